// CAs made elsewhere, as users migrating from Linkerd, Istio, cert-manager or SPIRE bring them,
// made here with the system's `openssl`. Each is given to a real `mutual identity serve`:
// the sound ones start and certify workloads whose sidecars pass mTLS traffic (and `openssl
// verify` agrees); those whose certificates no peer would accept (name constraints excluding the
// trust domain, path length, SHA-1, an anchor without keyCertSign, a CA without authority key
// identifier, an intermediate EKU without clientAuth) are refused at start with
// MUTUAL_PKI_ISSUER_UNVERIFIABLE naming the certificate and the fix, and on reload.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { startIdentityService as startIdentityServiceInProcess } from '../../src/identity/index.ts';
import { startProxyProcess, waitUntil } from '../../src/testing/mesh-pki.ts';
import { mintJoinToken, runMutual, startIdentityService } from './run-mutual.ts';

const TD = 'cluster.local';
const URI = `subjectAltName=URI:spiffe://${TD}`;
const ROOT =
  'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash';
const INTERMEDIATE =
  'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always';

let dir: string;
let app: Server;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-byo-ca-'));
  app = createServer((_request, response) => response.end('hello through mTLS'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  app.close();
  await rm(dir, { recursive: true, force: true });
});

function openssl(args: readonly string[], input?: string): string {
  const result = spawnSync('openssl', args, { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
  assert.equal(result.status, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** A key file: EC on a curve, or RSA of some bits. */
function key(path: string, kind: 'P-256' | 'P-384' | 2048 | 3072): string {
  const args =
    typeof kind === 'number'
      ? ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${kind}`]
      : ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${kind}`];
  openssl(['genpkey', ...args, '-out', path]);
  return path;
}

/** A certificate for `keyPath` with these extensions, self-signed or signed by `signer`. */
function certificate(
  path: string,
  keyPath: string,
  subject: string,
  extensions: string,
  signer?: { cert: string; key: string },
  extra: readonly string[] = [],
): string {
  const config = `${path}.cnf`;
  spawnSync('sh', ['-c', `cat > ${config}`], {
    input: `[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n[ext]\n${extensions}\n`,
  });
  openssl(['req', '-new', '-key', keyPath, '-subj', subject, '-out', `${path}.csr`, '-config', config]);
  const signing = signer ? ['-CA', signer.cert, '-CAkey', signer.key] : ['-key', keyPath];
  openssl([
    ...['x509', '-req', '-in', `${path}.csr`, ...signing, '-out', path, '-days', '365'],
    ...['-extfile', config, '-extensions', 'ext', '-set_serial', `0x${Date.now().toString(16)}1`, ...extra],
  ]);
  return path;
}

interface CaCase {
  readonly dir: string;
  readonly issuerCert: string;
  readonly issuerKey: string;
  readonly anchors: string;
}

/** Root (with `rootExtensions`) → issuer (with `issuerExtensions`), EC P-256 unless told. */
async function rootAndIssuer(
  name: string,
  rootExtensions: string,
  issuerExtensions: string,
  options: { rootKey?: 'P-256' | 'P-384' | 3072; issuerKey?: 'P-256' | 'P-384' | 2048; sha1?: boolean } = {},
): Promise<CaCase> {
  const caseDir = join(dir, name);
  await mkdir(caseDir);
  const path = (file: string) => join(caseDir, file);
  const root = certificate(
    path('root.crt'),
    key(path('root.key'), options.rootKey ?? 'P-256'),
    '/CN=root',
    rootExtensions,
  );
  const issuerKey = key(path('issuer.key'), options.issuerKey ?? 'P-256');
  certificate(
    path('issuer.crt'),
    issuerKey,
    `/CN=${name}`,
    issuerExtensions,
    { cert: root, key: path('root.key') },
    options.sha1 ? ['-sha1'] : [],
  );
  return { dir: caseDir, issuerCert: path('issuer.crt'), issuerKey, anchors: root };
}

function serveArgs(ca: CaCase): string[] {
  return [
    ...['identity', 'serve', '--issuer-cert', ca.issuerCert, '--issuer-key', ca.issuerKey],
    ...['--trust-anchors', ca.anchors, '--state-dir', join(ca.dir, 'state')],
    ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
  ];
}

/** Starts identity serve on the CA, a sidecar pair certified by it, and sends a request through. */
async function assertServesMtls(ca: CaCase, service?: { apiUrl: URL; stop(): Promise<void> }): Promise<void> {
  const stateDir = join(ca.dir, 'state');
  const identity =
    service ??
    (await startIdentityService(ca.dir, stateDir, [
      ...['--issuer-cert', ca.issuerCert, '--issuer-key', ca.issuerKey, '--trust-anchors', ca.anchors],
    ]));
  const proxies: Array<{ stop(): Promise<void> }> = [];
  try {
    const flags = async (sa: string) => {
      const tokenFile = join(ca.dir, `${sa}.token`);
      await writeFile(tokenFile, await mintJoinToken(stateDir, 'demo', sa), { mode: 0o600 });
      return [
        ...['--identity-url', identity.apiUrl.toString(), '--token-file', tokenFile],
        ...['--spiffe-id', `spiffe://${TD}/ns/demo/sa/${sa}`, '--identity-bundle', ca.anchors],
        ...['--admin-listen', '127.0.0.1:0'],
      ];
    };
    const server = await startProxyProcess([
      ...(await flags('api')),
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
    ]);
    proxies.push(server);
    const client = await startProxyProcess([
      ...(await flags('web')),
      ...['--upstream', `127.0.0.1:0=spiffe://${TD}/ns/demo/sa/api@127.0.0.1:${server.inbound[0]!.port}`],
    ]);
    proxies.push(client);
    await Promise.all([server.untilReady(), client.untilReady()]);
    const response = await fetch(`http://127.0.0.1:${client.outbound[0]!.port}/`);
    assert.equal(await response.text(), 'hello through mTLS', ca.dir);
    // What the server sidecar holds verifies with OpenSSL against the anchors, as peers check it.
    const { certificateChainPem } = (await (await fetch(`${server.adminUrl}/identity`)).json()) as {
      certificateChainPem: string;
    };
    const [leaf, ...chain] = certificateChainPem.match(
      /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g,
    )!;
    await writeFile(join(ca.dir, 'leaf.pem'), leaf!);
    await writeFile(join(ca.dir, 'chain.pem'), chain.join(''));
    const verified = spawnSync(
      'openssl',
      [
        'verify',
        '-CAfile',
        ca.anchors,
        '-untrusted',
        join(ca.dir, 'chain.pem'),
        '-purpose',
        'sslclient',
        join(ca.dir, 'leaf.pem'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
  } finally {
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    await identity.stop();
  }
}

async function assertRefused(ca: CaCase, reason: RegExp): Promise<void> {
  const started = await runMutual(serveArgs(ca), { timeoutMs: 20_000 });
  assert.equal(started.code, 1, `${ca.dir} started:\n${started.stdout}${started.stderr}`);
  assert.match(started.stderr, /^error\[MUTUAL_PKI_ISSUER_UNVERIFIABLE\]: .*would be refused by every peer/m);
  assert.match(started.stderr, reason);
  assert.match(started.stderr, /Fix: /);
  assert.doesNotMatch(started.stderr, /\n\s+at /, 'no stack trace');
  assert.doesNotMatch(started.stdout, /listening on/);
}

test('Istio plug-in CA style (RSA root, pathlen-0 intermediate, cert-chain.pem with the root) serves mTLS', async () => {
  const ca = await rootAndIssuer(
    'istio-plugin',
    'subjectKeyIdentifier=hash\nbasicConstraints=critical,CA:true\nkeyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign',
    `subjectKeyIdentifier=hash\nbasicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign\nsubjectAltName=DNS:istiod.istio-system.svc,URI:spiffe://${TD}`,
    { rootKey: 3072, issuerKey: 2048 },
  );
  // cert-chain.pem: the intermediate, then the root; the key in PKCS#1 as cert-manager writes it.
  const chain = (await readFile(ca.issuerCert, 'utf8')) + (await readFile(ca.anchors, 'utf8'));
  await writeFile(join(ca.dir, 'cert-chain.pem'), chain);
  openssl(['pkey', '-in', ca.issuerKey, '-traditional', '-out', join(ca.dir, 'ca-key.pem')]);
  assert.match(await readFile(join(ca.dir, 'ca-key.pem'), 'utf8'), /BEGIN RSA PRIVATE KEY/);
  await assertServesMtls({
    ...ca,
    issuerCert: join(ca.dir, 'cert-chain.pem'),
    issuerKey: join(ca.dir, 'ca-key.pem'),
  });
});

test('a root whose DNS-only name constraints exclude the identity service host names still serves mTLS', async () => {
  // Before: the identity service's own certificate carried DNS:localhost, outside the root's
  // constraints, and every workload failed to reach it ('permitted subtree violation').
  const ca = await rootAndIssuer(
    'root-dns-constrained',
    `${ROOT}\n${URI}\nnameConstraints=critical,permitted;DNS:${TD}`,
    `${INTERMEDIATE}\n${URI}`,
  );
  await assertServesMtls(ca);
});

test('a root made by `openssl req -x509` with its defaults (no keyUsage) serves mTLS', async () => {
  // openssl.cnf's v3_ca: RFC 5280 checks keyCertSign only where keyUsage is present, and OpenSSL,
  // Go, rustls and BoringSSL accept such roots; Mutual refused them ('lacks keyUsage keyCertSign').
  const ca = await rootAndIssuer(
    'openssl-default-root',
    'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always,issuer\nbasicConstraints=critical,CA:true',
    `${INTERMEDIATE}\n${URI}`,
  );
  await assertServesMtls(ca);
});

test('an intermediate name-constrained to the trust domain, under a P-384 root, serves mTLS', async () => {
  const ca = await rootAndIssuer(
    'nc-permit',
    `${ROOT}\n${URI}`,
    `${INTERMEDIATE}\n${URI}\nnameConstraints=critical,permitted;URI:${TD}`,
    {
      rootKey: 'P-384',
    },
  );
  await assertServesMtls(ca);
});

test('CAs whose certificates no peer would accept are refused at start, saying what to fix', async () => {
  const cases: Array<[string, string, string, RegExp, { sha1?: boolean }?]> = [
    [
      'nc-exclude',
      `${ROOT}\n${URI}`,
      `${INTERMEDIATE}\n${URI}\nnameConstraints=critical,excluded;URI:${TD}`,
      /is excluded.*permit the trust domain's IDs/,
    ],
    [
      'nc-other',
      `${ROOT}\n${URI}`,
      `${INTERMEDIATE}\n${URI}\nnameConstraints=critical,permitted;URI:example.org`,
      /is not permitted.*permitted;URI:cluster\.local/,
    ],
    [
      'root-pathlen0',
      `${ROOT.replace('CA:TRUE', 'CA:TRUE,pathlen:0')}\n${URI}`,
      `${INTERMEDIATE}\n${URI}`,
      /pathLenConstraint.*larger pathlen/,
    ],
    [
      'sha1',
      `${ROOT}\n${URI}`,
      `${INTERMEDIATE}\n${URI}`,
      /disallowed algorithm 1\.2\.840\.113549\.1\.1\.5.*SHA-256/,
      { sha1: true },
    ],
    [
      'no-aki',
      `${ROOT}\n${URI}`,
      `${INTERMEDIATE.replace('keyid:always', 'none')}\n${URI}`,
      /no authorityKeyIdentifier.*authorityKeyIdentifier=keyid/,
    ],
    [
      'eku-server-only',
      `${ROOT}\n${URI}`,
      `${INTERMEDIATE}\n${URI}\nextendedKeyUsage=serverAuth`,
      /OpenSSL \(a server checking the client\).*INVALID_PURPOSE.*serverAuth,clientAuth/,
    ],
  ];
  for (const [name, rootExtensions, issuerExtensions, reason, options] of cases) {
    const rsaRoot = options?.sha1 ? { rootKey: 3072 as const } : {};
    await assertRefused(
      await rootAndIssuer(name, rootExtensions, issuerExtensions, { ...rsaRoot, ...options }),
      reason,
    );
  }
});

test('an unverifiable issuer copied over the one in use is refused on reload; the old one keeps serving', async () => {
  const good = await rootAndIssuer('reload', `${ROOT}\n${URI}`, `${INTERMEDIATE}\n${URI}`);
  const identity = await startIdentityService(good.dir, join(good.dir, 'state'), [
    ...['--issuer-cert', good.issuerCert, '--issuer-key', good.issuerKey, '--trust-anchors', good.anchors],
  ]);
  try {
    // Same root, an issuer whose name constraints exclude the trust domain, moved in atomically.
    const path = (file: string) => join(good.dir, file);
    const badKey = key(path('bad.key'), 'P-256');
    certificate(
      path('bad.crt'),
      badKey,
      '/CN=bad',
      `${INTERMEDIATE}\n${URI}\nnameConstraints=critical,excluded;URI:${TD}`,
      {
        cert: good.anchors,
        key: path('root.key'),
      },
    );
    await rename(badKey, good.issuerKey);
    await rename(path('bad.crt'), good.issuerCert);
    await waitUntil(async () => /ca reload: issuer refused/.test(identity.output()), 'the reload refusal');
    assert.match(identity.output(), /ca reload: issuer refused \[MUTUAL_PKI_ISSUER_UNVERIFIABLE\]/);
    const status = (await (await fetch(new URL('/ca', identity.adminUrl))).json()) as {
      issuer: { subject: string };
    };
    assert.match(JSON.stringify(status), /CN=reload/);
  } finally {
    await identity.stop();
  }
});

/** The identity service in this process, told its trust domain (what `--trust-domain` passes). */
async function startWithTrustDomain(ca: CaCase, trustDomain: string) {
  const service = await startIdentityServiceInProcess({
    ca: { issuerCertificate: ca.issuerCert, issuerKey: ca.issuerKey, trustAnchors: ca.anchors },
    trustDomain,
    // Where `mutual identity token create --state-dir` finds the join-token key.
    stateDir: join(ca.dir, 'state', 'identity'),
    listen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    lifetimeMs: 3_600_000,
    skewMs: 20_000,
    clock: systemClock,
  });
  return { apiUrl: new URL(service.apiUrl), stop: () => service.close() };
}

test('Linkerd (step) and cert-manager issuers, which name no trust domain, serve mTLS once told theirs', async () => {
  // step certificate create root.linkerd.cluster.local --profile root-ca, then
  // identity.linkerd.cluster.local --profile intermediate-ca: EC P-256, no subjectAltName.
  const linkerd = await rootAndIssuer(
    'linkerd-step',
    ROOT.replace('CA:TRUE', 'CA:TRUE,pathlen:1'),
    INTERMEDIATE,
  );
  // Without it the issuer is refused, saying why (it names no trust domain).
  const refused = await runMutual(serveArgs(linkerd), { timeoutMs: 20_000 });
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /^error\[MUTUAL_PKI_ISSUER_INVALID\]: .*has no spiffe:\/\/<trust-domain> URI SAN/m,
  );
  assert.doesNotMatch(refused.stderr, /\n\s+at /);
  // `identity serve --trust-domain` tells it: the real binary then serves a sidecar pair.
  await assertServesMtls(
    linkerd,
    await startIdentityService(linkerd.dir, join(linkerd.dir, 'state'), [
      ...['--issuer-cert', linkerd.issuerCert, '--issuer-key', linkerd.issuerKey],
      ...['--trust-anchors', linkerd.anchors, '--trust-domain', TD],
    ]),
  );
  // cert-manager's Certificate with isCA: RSA 2048 in PKCS#1, dnsNames, usages server/client auth,
  // and tls.crt holding the chain.
  const certManager = await rootAndIssuer(
    'cert-manager',
    ROOT,
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:identity.linkerd.cluster.local\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always',
    { issuerKey: 2048 },
  );
  const tlsCrt = join(certManager.dir, 'tls.crt');
  await writeFile(
    tlsCrt,
    (await readFile(certManager.issuerCert, 'utf8')) + (await readFile(certManager.anchors, 'utf8')),
  );
  const tlsKey = join(certManager.dir, 'tls.key');
  openssl(['pkey', '-in', certManager.issuerKey, '-traditional', '-out', tlsKey]);
  const fromSecret = { ...certManager, issuerCert: tlsCrt, issuerKey: tlsKey };
  await assertServesMtls(fromSecret, await startWithTrustDomain(fromSecret, TD));
});

test('a trust domain that contradicts the URI SAN of the issuer is refused', async () => {
  const ca = await rootAndIssuer('td-contradiction', `${ROOT}\n${URI}`, `${INTERMEDIATE}\n${URI}`);
  await assert.rejects(startWithTrustDomain(ca, 'example.org'), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'MUTUAL_PKI_ISSUER_INVALID');
    assert.match(error.message, /belongs to trust domain cluster\.local, not example\.org/);
    return true;
  });
});
