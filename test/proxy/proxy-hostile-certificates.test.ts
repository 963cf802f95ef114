// Certificates signed by the mesh's OWN issuer (so the chain is valid) but wrong in some other way,
// made with the system's `openssl` (3.0) and `faketime`, as a thief of an issuer-signed artefact or
// a misconfigured second PKI would present them: to a STRICT sidecar inbound as the client
// (`openssl s_client`), and as the server (`openssl s_server -Verify 1`) behind a sidecar's
// `--upstream` that expects one SPIFFE ID. Each is refused (or served, where that is right) with
// no byte reaching the app, counted by reason, logged, and a good peer is served right after.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { privateKeyToPem } from '../../src/pki/index.ts';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
} from '../../src/testing/mesh-pki.ts';

const missing =
  spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0
    ? 'openssl is not installed'
    : spawnSync('faketime', ['-f', '+0', 'true'], { stdio: 'ignore' }).status !== 0
      ? 'faketime is not installed'
      : undefined;

const TD = 'cluster.local';
const TARGET = `spiffe://${TD}/ns/demo/sa/target`;

let dir: string;
let pki: TestPki;
const file = (name: string) => join(dir, 'certs', name);

/** Runs a command to completion; rejects with its output when it fails. */
function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')}: ${out}`)),
    );
  });
}

type KeyType = 'ec' | 'rsa2048' | 'rsa1024';

async function newKey(path: string, type: KeyType): Promise<void> {
  const options =
    type === 'ec'
      ? ['EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
      : ['RSA', '-pkeyopt', `rsa_keygen_bits:${type.slice(3)}`];
  await run('openssl', ['genpkey', '-algorithm', ...options, '-out', path]);
}

interface Signer {
  readonly cert: string;
  readonly key: string;
}

/**
 * `openssl req` + `openssl x509 -req -extfile`: a certificate for a new key named `name`, signed
 * by `signer`, with `extensions` (extfile lines); `shift` ('+1d', '-30d') runs the signing under
 * faketime. Writes certs/<name>.pem and certs/<name>.key.
 */
async function issue(
  name: string,
  signer: Signer,
  extensions: readonly string[],
  options: { key?: KeyType; days?: number; shift?: string; subject?: string } = {},
): Promise<Signer> {
  const made = { cert: file(`${name}.pem`), key: file(`${name}.key`) };
  await newKey(made.key, options.key ?? 'ec');
  const subject = options.subject ?? `/O=mutual-hostile/CN=${name}`;
  await run('openssl', ['req', '-new', '-key', made.key, '-subj', subject, '-out', file(`${name}.csr`)]);
  await writeFile(file(`${name}.ext`), `${extensions.join('\n')}\n`);
  const sign = [
    ...['x509', '-req', '-in', file(`${name}.csr`), '-CA', signer.cert, '-CAkey', signer.key],
    ...['-set_serial', `0x${randomBytes(12).toString('hex')}`, '-days', String(options.days ?? 1)],
    ...['-extfile', file(`${name}.ext`), '-out', made.cert],
  ];
  await (options.shift ? run('faketime', ['-f', options.shift, 'openssl', ...sign]) : run('openssl', sign));
  return made;
}

const leafExtensions = (
  overrides: { san?: string; basic?: string; ku?: string; eku?: string | null } = {},
): string[] => [
  `basicConstraints=${overrides.basic ?? 'critical,CA:FALSE'}`,
  `keyUsage=${overrides.ku ?? 'critical,digitalSignature'}`,
  ...(overrides.eku === null ? [] : [`extendedKeyUsage=${overrides.eku ?? 'serverAuth,clientAuth'}`]),
  `subjectAltName=${overrides.san ?? `URI:${TARGET}`}`,
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid:always',
];
const caExtensions = (pathlen?: number) => [
  `basicConstraints=critical,CA:TRUE${pathlen === undefined ? '' : `,pathlen:${pathlen}`}`,
  'keyUsage=critical,keyCertSign,cRLSign',
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid:always',
];

/** What a hostile peer presents: its certificate and key, and the certificates sent after it. */
interface Presented {
  readonly cert: string;
  readonly key: string;
  /** PEM file of the certificates sent after the leaf (s_client/s_server -cert_chain). */
  readonly chain?: string;
  /** Extra s_client/s_server arguments (a lower security level for an RSA-1024 key). */
  readonly args?: readonly string[];
}

/** A failure reason of mutual_tls_handshake_failures_total, or 'served'. */
type Outcome = 'served' | 'not_yet_valid' | 'not_svid' | 'unknown_authority' | 'protocol';

interface HostileCase {
  readonly name: string;
  /** As a client of the STRICT inbound, and as the server behind an upstream expecting TARGET. */
  readonly inbound: Outcome;
  readonly outbound: Outcome;
  readonly make: () => Promise<Presented>;
}

let issuer: Signer;
let anchor: Signer;
const presented = new Map<string, Presented>();

async function chainFile(name: string, certs: readonly string[]): Promise<string> {
  const pems = await Promise.all(certs.map((cert) => readFile(cert, 'utf8')));
  await writeFile(file(`${name}.chain.pem`), pems.join(''));
  return file(`${name}.chain.pem`);
}

/** A leaf under the mesh's issuer, sent with the issuer after it. */
async function underIssuer(
  name: string,
  extensions: readonly string[],
  options: Parameters<typeof issue>[3] = {},
): Promise<Presented> {
  const leaf = await issue(name, issuer, extensions, options);
  return { ...leaf, chain: issuer.cert };
}

const cases: readonly HostileCase[] = [
  {
    name: 'control: an openssl-made SVID',
    inbound: 'served',
    outbound: 'served',
    make: () => underIssuer('control', leafExtensions()),
  },
  {
    name: '1 not yet valid (from tomorrow)',
    inbound: 'not_yet_valid',
    outbound: 'not_yet_valid',
    make: () => underIssuer('future', leafExtensions(), { shift: '+1d', days: 2 }),
  },
  {
    // RFC 5280 asks no nesting of validity periods; OpenSSL, Go and rustls accept it too.
    name: '2 notBefore before the issuer, notAfter beyond it',
    inbound: 'served',
    outbound: 'served',
    make: () => underIssuer('outlives', leafExtensions(), { shift: '-30d', days: 400 }),
  },
  {
    name: "3a the issuer's own certificate and key",
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: async () => issuer,
  },
  {
    name: "3b the root's certificate and key",
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: async () => anchor,
  },
  {
    name: '4 CA:TRUE leaf with the right SPIFFE ID',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: () => underIssuer('ca-leaf', leafExtensions({ basic: 'critical,CA:TRUE' })),
  },
  {
    name: '5 DNS SAN only',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: () => underIssuer('dns-only', leafExtensions({ san: 'DNS:target.demo.svc.cluster.local' })),
  },
  {
    name: '6 two URI SANs',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: () =>
      underIssuer('two-uris', leafExtensions({ san: `URI:${TARGET},URI:spiffe://${TD}/ns/demo/sa/other` })),
  },
  {
    // The inbound's verifier names the issuer's name constraint (unknown_authority); on the outbound
    // OpenSSL refuses first, and Node reports that as UNSPECIFIED (not_svid).
    name: '7 another trust domain',
    inbound: 'unknown_authority',
    outbound: 'not_svid',
    make: () =>
      underIssuer('foreign-td', leafExtensions({ san: 'URI:spiffe://evil.example/ns/demo/sa/target' })),
  },
  ...(
    [
      ['dot segment', `spiffe://${TD}/ns/demo/../sa/target`],
      ['percent-encoding', `spiffe://${TD}/ns/demo/sa/tar%67et`],
      ['query', `spiffe://${TD}/ns/demo/sa/target?x=1`],
      ['fragment', `spiffe://${TD}/ns/demo/sa/target\\#x`],
      ['upper-case scheme', `SPIFFE://${TD}/ns/demo/sa/target`],
      ['upper-case host', `spiffe://CLUSTER.LOCAL/ns/demo/sa/target`],
      ['trailing slash', `${TARGET}/`],
      ['user info', `spiffe://admin@${TD}/ns/demo/sa/target`],
      ['port', `spiffe://${TD}:8443/ns/demo/sa/target`],
    ] as const
  ).map(
    ([rule, uri], index): HostileCase => ({
      name: `8 SPIFFE ID with ${rule}`,
      inbound: 'not_svid',
      outbound: 'not_svid',
      make: () => underIssuer(`bad-id-${index}`, leafExtensions({ san: `URI:${uri}` })),
    }),
  ),
  {
    name: '9a EKU serverAuth only',
    inbound: 'not_svid',
    outbound: 'served',
    make: () => underIssuer('eku-server', leafExtensions({ eku: 'serverAuth' })),
  },
  {
    name: '9b EKU clientAuth only',
    inbound: 'served',
    outbound: 'not_svid',
    make: () => underIssuer('eku-client', leafExtensions({ eku: 'clientAuth' })),
  },
  {
    name: '10a keyUsage keyAgreement (no digitalSignature)',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: () => underIssuer('ku-agreement', leafExtensions({ ku: 'critical,keyAgreement' })),
  },
  {
    name: '10b keyUsage keyEncipherment (no digitalSignature)',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: () => underIssuer('ku-encipherment', leafExtensions({ ku: 'critical,keyEncipherment' })),
  },
  {
    name: '10c keyUsage digitalSignature and keyCertSign',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: () => underIssuer('ku-certsign', leafExtensions({ ku: 'critical,digitalSignature,keyCertSign' })),
  },
  {
    name: '11a RSA-2048 leaf',
    inbound: 'served',
    outbound: 'served',
    make: () => underIssuer('rsa2048', leafExtensions(), { key: 'rsa2048' }),
  },
  {
    name: '11b RSA-1024 leaf',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: async () => ({
      ...(await underIssuer('rsa1024', leafExtensions(), { key: 'rsa1024' })),
      args: ['-cipher', 'DEFAULT@SECLEVEL=0'],
    }),
  },
  {
    name: "12 the issuer's name and key identifier, another key",
    inbound: 'unknown_authority',
    outbound: 'unknown_authority',
    make: async () => {
      // A self-signed CA under the issuer's exact subject and subjectKeyIdentifier.
      const subject = (
        await run('openssl', ['x509', '-in', issuer.cert, '-noout', '-subject', '-nameopt', 'compat'])
      )
        .replace(/^subject=/, '')
        .trim();
      const skid = (
        await run('openssl', ['x509', '-in', issuer.cert, '-noout', '-ext', 'subjectKeyIdentifier'])
      )
        .split('\n')[1]!
        .trim();
      const impostor = { cert: file('impostor.pem'), key: file('impostor.key') };
      await newKey(impostor.key, 'ec');
      await run('openssl', [
        'req',
        '-new',
        '-key',
        impostor.key,
        '-subj',
        subject,
        '-out',
        file('impostor.csr'),
      ]);
      await writeFile(
        file('impostor.ext'),
        `${['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign', `subjectKeyIdentifier=${skid.replaceAll(':', '')}`].join('\n')}\n`,
      );
      await run('openssl', [
        ...['x509', '-req', '-in', file('impostor.csr'), '-key', impostor.key, '-days', '1'],
        ...['-extfile', file('impostor.ext'), '-out', impostor.cert],
      ]);
      const leaf = await issue('impostor-leaf', impostor, leafExtensions());
      return { ...leaf, chain: await chainFile('impostor-leaf', [impostor.cert]) };
    },
  },
  {
    name: '13a a 200 KB leaf (4,000 DNS SANs beside the SPIFFE ID)',
    inbound: 'protocol',
    outbound: 'protocol',
    make: async () => {
      const names = Array.from(
        { length: 4_000 },
        (_, i) => `DNS:h${i}.padding-padding-padding-padding.example`,
      );
      return underIssuer('huge', leafExtensions({ san: `URI:${TARGET},${names.join(',')}` }));
    },
  },
  {
    name: '13a a 27 KB leaf (700 DNS SANs beside the SPIFFE ID)',
    inbound: 'served',
    outbound: 'served',
    make: async () => {
      const names = Array.from(
        { length: 700 },
        (_, i) => `DNS:h${i}.padding-padding-padding-padding.example`,
      );
      return underIssuer('big', leafExtensions({ san: `URI:${TARGET},${names.join(',')}` }));
    },
  },
  {
    // Under OpenSSL's cap, but too large for a TLS 1.3 session ticket: refused as over MAX_SVID_BYTES.
    name: '13a an 84 KB leaf (1,800 DNS SANs beside the SPIFFE ID), under the 100 KB cap',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: async () => {
      const names = Array.from(
        { length: 1_800 },
        (_, i) => `DNS:h${i}.padding-padding-padding-padding.example`,
      );
      return underIssuer('large', leafExtensions({ san: `URI:${TARGET},${names.join(',')}` }));
    },
  },
  {
    // Both sides' verifier allows 8 intermediates (OpenSSL would take 100).
    name: '13b a chain of 30 intermediates under the root',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: async () => {
      const intermediates: Signer[] = [];
      let above = anchor;
      for (let i = 0; i < 30; i++) {
        above = await issue(`deep-${i}`, above, caExtensions());
        intermediates.unshift(above);
      }
      const leaf = await issue('deep-leaf', above, leafExtensions());
      return {
        ...leaf,
        chain: await chainFile(
          'deep-leaf',
          intermediates.map((cert) => cert.cert),
        ),
      };
    },
  },
  {
    name: '14 an intermediate under the pathlen:0 issuer',
    inbound: 'not_svid',
    outbound: 'not_svid',
    make: async () => {
      const extra = await issue('extra-ca', issuer, caExtensions());
      const leaf = await issue('below-extra', extra, leafExtensions());
      return { ...leaf, chain: await chainFile('below-extra', [extra.cert, issuer.cert]) };
    },
  },
];

// The app behind the server sidecar's STRICT inbound, and a relay the client sidecar's upstream
// dials, pointed at whichever s_server plays the hostile server.
let app: Server;
const appPaths: string[] = [];
let server: ProxyProcess;
let client: ProxyProcess;
let relay: ReturnType<typeof createTcpServer>;
let relayTarget = 0;

before(async () => {
  if (missing) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-hostile-certs-'));
  pki = await createTestPki(join(dir, 'pki'), TD);
  await mkdir(join(dir, 'certs'));
  issuer = { cert: file('issuer.pem'), key: file('issuer.key') };
  anchor = { cert: file('anchor.pem'), key: file('anchor.key') };
  await Promise.all([
    writeFile(issuer.cert, pki.issuer.certificatePem),
    writeFile(issuer.key, privateKeyToPem(pki.issuer.keys.privateKey)),
    writeFile(anchor.cert, pki.anchor.certificatePem),
    writeFile(anchor.key, privateKeyToPem(pki.anchor.keys.privateKey)),
  ]);
  const made = await Promise.all(cases.map(async (hostile) => [hostile.name, await hostile.make()] as const));
  for (const [name, what] of made) presented.set(name, what);

  const [emoji, web] = await Promise.all([pki.workload('emoji'), pki.workload('web')]);
  app = createHttpServer((request, response) => {
    appPaths.push(String(request.url));
    response.end(`${request.url} ${request.headers['x-mutual-client-id'] ?? 'nobody'}\n`);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  relay = createTcpServer((socket) => {
    const upstream = connect(relayTarget, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--mode', 'STRICT'],
    ...['--detect-timeout', '2s', '--admin-listen', '127.0.0.1:0'],
  ]);
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${TARGET}@127.0.0.1:${(relay.address() as AddressInfo).port}`],
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  app?.close();
  relay?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `openssl s_client` to the STRICT inbound presenting `what`; sends one GET and returns all it printed. */
function sClient(what: Presented, path: string): Promise<string> {
  return new Promise((resolve) => {
    const args = [
      ...['s_client', '-connect', `127.0.0.1:${server.inbound[0]!.port}`, '-tls1_3', '-ign_eof'],
      ...['-cert', what.cert, '-key', what.key, ...(what.chain ? ['-cert_chain', what.chain] : [])],
      ...['-CAfile', pki.bundleFile, ...(what.args ?? [])],
    ];
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const collect = (chunk: Buffer) => {
      out += chunk.toString('latin1');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.stdin.on('error', () => {});
    child.stdin.end(`GET ${path} HTTP/1.0\r\n\r\n`);
    const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/**
 * `openssl s_server -Verify 1 -www` presenting `what` (it answers a GET with a status page); the
 * relay points at it once it accepts. Returns its output once stopped.
 */
async function withSServer<T>(
  what: Presented,
  use: () => Promise<T>,
): Promise<{ result: T; output: string }> {
  const child = spawn(
    'openssl',
    [
      ...['s_server', '-accept', '127.0.0.1:0', '-tls1_3', '-Verify', '1', '-www'],
      ...['-cert', what.cert, '-key', what.key, ...(what.chain ? ['-cert_chain', what.chain] : [])],
      ...['-CAfile', pki.bundleFile, ...(what.args ?? [])],
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const collect = (chunk: Buffer) => {
        output += chunk.toString('latin1');
        const port = /^ACCEPT 127\.0\.0\.1:(\d+)$/m.exec(output)?.[1];
        if (port) {
          relayTarget = Number(port);
          resolve();
        }
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      exited.then(() => reject(new Error(`s_server did not start:\n${output}`)));
    });
    return { result: await use(), output };
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** A GET from the app's side through a local port of the client sidecar; what came back, or how it ended. */
function getThrough(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nhost: target\r\nconnection: close\r\n\r\n`),
    );
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(`${data}[${error.code}]`));
    socket.on('close', () => resolve(data));
  });
}

/** mutual_tls_handshake_failures_total by reason, for one direction. */
async function failuresByReason(proxy: ProxyProcess, direction: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await proxy.metrics()).split('\n')) {
    if (
      !line.startsWith('mutual_tls_handshake_failures_total{') ||
      !line.includes(`direction="${direction}"`)
    )
      continue;
    const reason = /reason="([^"]+)"/.exec(line)![1]!;
    counts.set(reason, (counts.get(reason) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

/** What changed between two readings: 'served' when nothing, the one reason that grew by one otherwise. */
function outcome(before: Map<string, number>, after: Map<string, number>): string {
  const grown = [...after].filter(([reason, count]) => count !== (before.get(reason) ?? 0));
  if (grown.length === 0) return 'served';
  return grown.map(([reason, count]) => `${reason}+${count - (before.get(reason) ?? 0)}`).join(',');
}

const expected = (what: Outcome) => (what === 'served' ? 'served' : `${what}+1`);
const control = () => presented.get(cases[0]!.name)!;
const logLines = (proxy: ProxyProcess, message: string, reason: string) =>
  proxy
    .output()
    .split('\n')
    .filter((line) => line.includes(`"msg":"${message}"`) && line.includes(`"reason":"${reason}"`));

describe('certificates signed by the mesh issuer but wrong otherwise, against a real sidecar pair', {
  skip: missing,
}, () => {
  for (const [index, hostile] of cases.entries()) {
    test(`${hostile.name}: inbound ${hostile.inbound}, outbound ${hostile.outbound}`, async () => {
      const what = presented.get(hostile.name)!;
      // As the client of the STRICT inbound.
      const inboundBefore = await failuresByReason(server, 'inbound');
      const paths = appPaths.length;
      const said = await sClient(what, `/in-${index}`);
      const reached = appPaths.slice(paths);
      if (hostile.inbound === 'served') {
        assert.deepEqual(reached, [`/in-${index}`], server.output().slice(-3000));
        assert.match(said, new RegExp(`/in-${index} ${TARGET}\n`));
      } else {
        assert.deepEqual(reached, [], 'no byte of a refused client reaches the app');
        assert.doesNotMatch(said, /HTTP\/1\.[01] 200/);
      }
      // The refusal is counted once the server has seen the client go; s_client has exited by now.
      let inbound = '';
      for (let i = 0; i < 50; i++) {
        inbound = outcome(inboundBefore, await failuresByReason(server, 'inbound'));
        if (inbound === expected(hostile.inbound)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(inbound, expected(hostile.inbound), `inbound: ${said.slice(-400)}`);
      if (hostile.inbound !== 'served') {
        const message =
          hostile.inbound === 'protocol' ? 'inbound TLS handshake failed' : 'inbound client refused';
        assert.ok(logLines(server, message, hostile.inbound).length >= 1, server.output());
      }
      assert.match(await sClient(control(), `/good-in-${index}`), new RegExp(`/good-in-${index} spiffe://`));

      // As the server behind the upstream that expects TARGET.
      const outboundBefore = await failuresByReason(client, 'outbound');
      const { result: answer, output } = await withSServer(what, () =>
        getThrough(client.outbound[0]!.port, `/out-${index}`),
      );
      assert.equal(
        outcome(outboundBefore, await failuresByReason(client, 'outbound')),
        expected(hostile.outbound),
      );
      const head = answer.slice(0, answer.indexOf('\r\n\r\n') + 1 || 300);
      if (hostile.outbound === 'served') {
        assert.match(head, /^HTTP\/1\.1 200 ok\r\n/);
        assert.match(answer, /s_server -accept/, 'the status page of s_server -www');
      } else {
        // The app gets a 502 naming the reason; s_server never saw a request (TLS 1.3: the client's
        // Finished, and so any data, never went).
        assert.match(
          head,
          new RegExp(`^HTTP/1\\.1 502 Bad Gateway\r\n[\\s\\S]*x-mutual-proxy-error: ${hostile.outbound}\r\n`),
        );
        assert.doesNotMatch(output, /GET \/out-/);
        assert.ok(logLines(client, 'outbound mTLS failed', hostile.outbound).length >= 1, client.output());
      }
      const good = await getThrough(client.outbound[1]!.port, `/good-out-${index}`);
      assert.match(good, new RegExp(`/good-out-${index} spiffe://${TD}/ns/demo/sa/web`));
    });
  }

  test('20 clients at once with a 200 KB certificate: refused at the 100 KB message cap while a good client is served, memory flat', async () => {
    const huge = presented.get(cases.find((hostile) => hostile.name.startsWith('13a a 200 KB'))!.name)!;
    const rss = async () =>
      Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${server.child.pid}/status`, 'utf8'))![1]);
    const rssBefore = await rss();
    const before = await failuresByReason(server, 'inbound');
    const paths = appPaths.length;
    const [good] = await Promise.all([
      sClient(control(), '/during-huge'),
      ...Array.from({ length: 20 }, () => sClient(huge, '/huge')),
    ]);
    assert.match(good!, /\/during-huge spiffe:\/\//);
    assert.deepEqual(appPaths.slice(paths), ['/during-huge']);
    assert.equal(outcome(before, await failuresByReason(server, 'inbound')), 'protocol+20');
    const grownKb = (await rss()) - rssBefore;
    assert.ok(grownKb < 64 * 1024, `RSS grew by ${grownKb} KB`);
  });
});
