// `mutual proxy run --cert --key --bundle` with the files an existing PKI's tools write (openssl
// here): the formats worth taking are taken (DER, one file for chain and key, SEC1 keys with their
// EC PARAMETERS), and every other file ends the command with what is wrong, in which file, and
// the command that fixes it; a FIFO or a directory neither hangs the proxy nor is waited for, and
// one swapped in while it runs is refused while the old credentials serve on.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from 'node:tls';
import { metricValue, type ProxyProcess, startProxyProcess, waitUntil } from '../../src/testing/mesh-pki.ts';
import { runMutual } from '../e2e/run-mutual.ts';

let dir: string;
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
const LEAF_EXT =
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n';

/** A leaf signed by the intermediate: `name.pem` (leaf + intermediate), its key `name.key`. */
function issue(
  name: string,
  san: string,
  keyArgs: string[] = ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
) {
  openssl(...keyArgs, '-out', `${name}.key`);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
  execFileSync('sh', ['-c', `printf '${LEAF_EXT}subjectAltName=${san}\\n' > ${name}.ext`], { cwd: dir });
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'int.pem',
    '-CAkey',
    'int.key',
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.leaf.pem`,
  );
  execFileSync('sh', ['-c', `cat ${name}.leaf.pem int.pem > ${name}.pem`], { cwd: dir });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-credential-formats-'));
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root.key');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'root.key',
    '-subj',
    '/CN=root',
    '-days',
    '365',
    '-out',
    'root.pem',
  );
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'int.key');
  openssl('req', '-new', '-key', 'int.key', '-subj', '/CN=int', '-out', 'int.csr');
  await writeFile(
    file('ca.ext'),
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    'int.csr',
    '-CA',
    'root.pem',
    '-CAkey',
    'root.key',
    '-CAcreateserial',
    '-days',
    '300',
    '-extfile',
    'ca.ext',
    '-out',
    'int.pem',
  );
  // `openssl ecparam -genkey` without -noout: a SEC1 key after its EC PARAMETERS block.
  issue('web', 'URI:spiffe://example.org/ns/demo/sa/web', ['ecparam', '-name', 'prime256v1', '-genkey']);
  issue('dns', 'DNS:web.example.org');
  issue('ed', 'URI:spiffe://example.org/ns/demo/sa/ed', ['genpkey', '-algorithm', 'ED25519']);
  await writeFile(
    file('combined.pem'),
    Buffer.concat([await readFile(file('web.key')), await readFile(file('web.pem'))]),
  );
  openssl('pkey', '-in', 'web.key', '-outform', 'DER', '-out', 'web.key.der');
  openssl('x509', '-in', 'root.pem', '-outform', 'DER', '-out', 'root.der');
  openssl('crl2pkcs7', '-nocrl', '-certfile', 'root.pem', '-out', 'root.p7b');
  execFileSync('sh', ['-c', 'cat int.pem web.leaf.pem > wrong-order.pem && mkfifo fifo.key && mkdir tls'], {
    cwd: dir,
  });
});

after(() => rm(dir, { recursive: true, force: true }));

const args = (cert: string, key: string, bundle: string) => [
  ...['--cert', file(cert), '--key', file(key), '--bundle', bundle.startsWith('/') ? bundle : file(bundle)],
  ...['--inbound', '127.0.0.1:0=9', '--admin-listen', '127.0.0.1:0'],
];

/** The SPIFFE ID of the certificate the proxy's inbound presents. */
async function servedId(proxy: ProxyProcess): Promise<string | undefined> {
  const socket = connect({
    ...proxy.inbound[0]!,
    rejectUnauthorized: false,
    cert: await readFile(file('web.pem')),
    key: await readFile(file('web.key')),
  });
  try {
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    return socket.getPeerCertificate().subjectaltname;
  } finally {
    socket.destroy();
  }
}

for (const [what, cert, key, bundle] of [
  ['the chain and the key in one file, given to both flags', 'combined.pem', 'combined.pem', 'root.pem'],
  ['a DER key and a DER root', 'web.pem', 'web.key.der', 'root.der'],
] as const) {
  test(`${what}: the proxy serves`, async () => {
    const proxy = await startProxyProcess(args(cert, key, bundle));
    try {
      await proxy.untilReady();
      assert.equal(await servedId(proxy), 'URI:spiffe://example.org/ns/demo/sa/web');
      // The chain handed on holds certificates only, never the key that shared its file.
      const identity = await (await fetch(`${proxy.adminUrl}/identity`)).text();
      assert.doesNotMatch(identity, /PRIVATE KEY/);
    } finally {
      await proxy.stop();
    }
  });
}

for (const [what, cert, key, bundle, expected] of [
  [
    'a FIFO as the key',
    'web.pem',
    'fifo.key',
    'root.pem',
    /^error\[MUTUAL_IO_NOT_A_FILE\]: --key \S+fifo\.key is a FIFO, not a file/m,
  ],
  [
    'a directory as the certificate',
    'tls',
    'web.key',
    'root.pem',
    /^error\[MUTUAL_IO_NOT_A_FILE\]: --cert \S+tls is a directory, not a file: give the path of the file itself \(e\.g\. \S+tls\/tls\.crt\)/m,
  ],
  [
    'a chain with the intermediate first',
    'wrong-order.pem',
    'web.key',
    'root.pem',
    /^error\[MUTUAL_PROXY_CREDENTIALS_INVALID\]: \S+wrong-order\.pem is in the wrong order: .*put the leaf first/m,
  ],
  [
    'a certificate with DNS names only',
    'dns.pem',
    'dns.key',
    'root.pem',
    /^error\[MUTUAL_PROXY_CREDENTIALS_INVALID\]: \S+dns\.pem .*has no URI SAN\. Mutual names each workload by the SPIFFE ID in exactly one URI SAN: issue one with `mutual cert issue .*subjectAltName=URI:spiffe:/m,
  ],
  [
    'an Ed25519 key',
    'ed.pem',
    'ed.key',
    'root.pem',
    /^error\[MUTUAL_PKI_KEY_UNSUPPORTED\]: \S+ed\.key is ed25519, .*openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256/m,
  ],
  [
    'a PKCS#7 bundle',
    'web.pem',
    'web.key',
    'root.p7b',
    /^error\[MUTUAL_PKI_PEM_WRONG_TYPE\]: --bundle \S+root\.p7b is a PKCS#7 \(\.p7b\) bundle; convert it to PEM certificates: openssl pkcs7 -print_certs -in /m,
  ],
  [
    'the system CA store as the bundle',
    'web.pem',
    'web.key',
    '/etc/ssl/certs/ca-certificates.crt',
    /^error\[MUTUAL_PKI_BUNDLE_INVALID\]: --bundle \/etc\/ssl\/certs\/ca-certificates\.crt holds \d+ certificates.*public CA store/m,
  ],
] as const) {
  test(`${what} ends the command at start with the reason and the fix`, async () => {
    const result = await runMutual(['proxy', 'run', ...args(cert, key, bundle)], { timeoutMs: 15_000 });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, expected);
    assert.doesNotMatch(result.stdout, /listening/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });
}

test('a FIFO or a DNS-only certificate swapped in while running is refused; the old set serves on and later reloads still work', async () => {
  const live = file('live');
  await mkdir(live);
  for (const name of ['web.pem', 'web.key']) await writeFile(join(live, name), await readFile(file(name)));
  const proxy = await startProxyProcess([
    ...['--cert', join(live, 'web.pem'), '--key', join(live, 'web.key'), '--bundle', file('root.pem')],
    ...['--inbound', '127.0.0.1:0=9', '--admin-listen', '127.0.0.1:0'],
  ]);
  const failures = async () =>
    metricValue(await proxy.metrics(), 'mutual_proxy_certificate_renewals_total', { result: 'failure' });
  try {
    await proxy.untilReady();
    // A FIFO renamed over the key, then SIGHUP: a blocking read would hold every later reload.
    execFileSync('mkfifo', [join(live, 'fifo')]);
    await rename(join(live, 'fifo'), join(live, 'web.key'));
    proxy.child.kill('SIGHUP');
    await waitUntil(async () => (await failures()) >= 1, 'the FIFO to be refused');
    assert.match(proxy.output(), /new credentials refused; the old ones keep serving.*MUTUAL_IO_NOT_A_FILE/);
    assert.equal((await fetch(`${proxy.adminUrl}/ready`)).status, 200);
    assert.equal(await servedId(proxy), 'URI:spiffe://example.org/ns/demo/sa/web');

    // A DNS-only certificate and its key written in place (file change): refused too.
    await rm(join(live, 'web.key'));
    await writeFile(join(live, 'web.key'), await readFile(file('dns.key')));
    await writeFile(join(live, 'web.pem'), await readFile(file('dns.pem')));
    await waitUntil(
      async () => proxy.output().includes('has no URI SAN'),
      'the DNS-only certificate to be refused',
    );
    assert.equal(await servedId(proxy), 'URI:spiffe://example.org/ns/demo/sa/web');

    // A good set again, as one file for both: taken.
    issue('web2', 'URI:spiffe://example.org/ns/demo/sa/web2');
    await writeFile(join(live, 'web.key'), await readFile(file('web2.key')));
    await writeFile(join(live, 'web.pem'), await readFile(file('web2.pem')));
    await waitUntil(
      async () => (await servedId(proxy)) === 'URI:spiffe://example.org/ns/demo/sa/web2',
      'the new certificate to serve',
    );
  } finally {
    await proxy.stop();
  }
});
