// Hostile and confused TLS clients at a sidecar's STRICT inbound port and at the destination
// service: `openssl s_client` (the system's OpenSSL 3.0) with old versions and odd algorithms,
// hand-made ClientHellos (a NUL or 64 KB server name, an empty ALPN name), handshakes left half
// done, 0-RTT and tickets from another trust domain, and a Node 24 client offering only the
// post-quantum hybrid group, and clients offering only the expensive key-exchange groups OpenSSL
// 3.5 would otherwise take (ffdhe, X448, P-521), at the sidecar and the identity service. Each
// is refused (or served) as it should be, counted by reason, logged once per kind, and a good
// client is served meanwhile.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import {
  createCa,
  type IdentityServiceProcess,
  type MutualDaemon,
  startIdentityService,
  startMutualDaemon,
} from '../e2e/run-mutual.ts';

const opensslMissing =
  spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'openssl is not installed';

let dir: string;
let pki: TestPki;
let web: WorkloadFiles;
let stranger: WorkloadFiles;
let app: Server;
const appPaths: string[] = [];
let proxy: ProxyProcess;
let foreignProxy: ProxyProcess;

before(async () => {
  if (opensslMissing) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-openssl-hostile-'));
  pki = await createTestPki(join(dir, 'pki'));
  const other = await createTestPki(join(dir, 'other'), 'other.example');
  const emoji = await pki.workload('emoji');
  const foreignEmoji = await other.workload('emoji');
  web = await pki.workload('web');
  stranger = await other.workload('web');
  app = createServer((request, response) => {
    appPaths.push(String(request.url));
    response.end(`${request.url} ${request.headers['x-mutual-client-id'] ?? 'nobody'}\n`);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  const sidecar = (files: WorkloadFiles) =>
    startProxyProcess([
      ...['--cert', files.certFile, '--key', files.keyFile, '--bundle', files.bundleFile],
      ...['--inbound', `127.0.0.1:0=${appPort}`, '--mode', 'STRICT', '--detect-timeout', '1s'],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
  [proxy, foreignProxy] = await Promise.all([sidecar(emoji), sidecar(foreignEmoji)]);
  await Promise.all([proxy.untilReady(), foreignProxy.untilReady()]);
});

after(async () => {
  await Promise.all([proxy?.stop(), foreignProxy?.stop()]);
  app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const inboundPort = () => proxy.inbound[0]!.port;
const failures = async (reason: string) =>
  metricValue(await proxy.metrics(), 'mutual_tls_handshake_failures_total', { direction: 'inbound', reason });
const logLines = (pattern: RegExp) =>
  proxy
    .output()
    .split('\n')
    .filter((line) => pattern.test(line)).length;

/** Runs `openssl s_client` with `args`, writes `input` after a pause, resolves with all it printed. */
function sClient(
  port: number,
  args: readonly string[],
  input = 'GET /s_client HTTP/1.0\r\n\r\n',
): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    const collect = (chunk: Buffer) => {
      out += chunk.toString('latin1');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.stdin.on('error', () => {});
    child.stdin.write(input);
    // s_client quits at end of input: give the answer time to arrive first.
    const ending = setTimeout(() => child.stdin.end(), 500);
    const killing = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.on('close', () => {
      clearTimeout(ending);
      clearTimeout(killing);
      resolve(out);
    });
  });
}

const withCert = (files: WorkloadFiles) => [
  ...['-cert', files.certFile, '-cert_chain', files.certFile, '-key', files.keyFile],
  ...['-CAfile', web.bundleFile],
];

/** A GET over mTLS as `web` (Node's client, `groups` if given); resolves with the app's answer. */
async function goodRequest(path: string, groups?: string): Promise<{ body: string; group?: string }> {
  const [ca, cert, key] = await Promise.all(
    [web.bundleFile, web.certFile, web.keyFile].map((file) => readFile(file, 'utf8')),
  );
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      {
        host: '127.0.0.1',
        port: inboundPort(),
        ca,
        cert,
        key,
        checkServerIdentity: () => undefined,
        ...(groups ? { ecdhCurve: groups } : {}),
      },
      () => socket.end(`GET ${path} HTTP/1.0\r\n\r\n`),
    );
    let body = '';
    let group: string | undefined;
    socket.on('secureConnect', () => {
      group = (socket.getEphemeralKeyInfo() as { name?: string } | null)?.name;
    });
    socket.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ body, group }));
  });
}

// A TLS 1.3 ClientHello written by hand, to send what no TLS library lets a caller send.
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const vector16 = (bytes: Buffer) => Buffer.concat([u16(bytes.length), bytes]);
const extension = (type: number, body: Buffer) => Buffer.concat([u16(type), vector16(body)]);

function clientHello(options: { serverName?: Buffer; alpn?: Buffer[] } = {}): Buffer {
  const extensions = [
    extension(0x002b, Buffer.from([2, 3, 4])), // supported_versions: TLS 1.3
    extension(0x000a, vector16(u16(0x001d))), // supported_groups: x25519
    extension(0x000d, vector16(u16(0x0403))), // signature_algorithms: ecdsa_secp256r1_sha256
    extension(0x0033, vector16(Buffer.concat([u16(0x001d), vector16(randomBytes(32))]))), // key_share
  ];
  if (options.serverName)
    extensions.push(
      extension(0x0000, vector16(Buffer.concat([Buffer.from([0]), vector16(options.serverName)]))),
    );
  if (options.alpn) {
    const names = options.alpn.map((name) => Buffer.concat([Buffer.from([name.length]), name]));
    extensions.push(extension(0x0010, vector16(Buffer.concat(names))));
  }
  const body = Buffer.concat([
    ...[u16(0x0303), randomBytes(32), Buffer.from([32]), randomBytes(32)],
    ...[vector16(u16(0x1301)), Buffer.from([1, 0]), vector16(Buffer.concat(extensions))],
  ]);
  const length = Buffer.from([body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]);
  const handshake = Buffer.concat([Buffer.from([1]), length, body]);
  const records: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += 16_384) {
    const fragment = handshake.subarray(at, at + 16_384);
    records.push(Buffer.from([22, 3, 1]), u16(fragment.length), fragment);
  }
  return Buffer.concat(records);
}

/** Sends `hello` and never another byte; resolves with what came back once the proxy closed. */
function sendHello(hello: Buffer, opened?: (socket: Socket) => void): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = connect(inboundPort(), '127.0.0.1', () => socket.write(hello));
    opened?.(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('a STRICT sidecar inbound port against hostile TLS clients', { skip: opensslMissing }, () => {
  test('TLS 1.0, 1.1 and 1.2 clients and RSA-only signature algorithms: an alert, counted, one log line per kind', async () => {
    const before = await failures('protocol');
    const paths = appPaths.length;
    const [tls10, tls11, tls12, rsaOnly, served] = await Promise.all([
      sClient(inboundPort(), ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0', ...withCert(web)]),
      sClient(inboundPort(), ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', ...withCert(web)]),
      sClient(inboundPort(), ['-tls1_2', ...withCert(web)]),
      sClient(inboundPort(), ['-tls1_3', '-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256', ...withCert(web)]),
      goodRequest('/during-old-versions'),
    ]);
    for (const out of [tls10, tls11, tls12]) assert.match(out, /alert protocol version/);
    assert.match(rsaOnly, /alert handshake failure/);
    assert.match(
      served.body,
      /200 OK[\s\S]*\/during-old-versions spiffe:\/\/cluster.local\/ns\/demo\/sa\/web/,
    );
    assert.equal(appPaths.length, paths + 1, 'only the good client reached the app');
    await waitUntil(async () => (await failures('protocol')) >= before + 4, 'four protocol failures');
    assert.equal(logLines(/"msg":"inbound TLS handshake failed".*unsupported protocol/), 1);
    assert.equal(logLines(/"msg":"inbound TLS handshake failed".*no suitable signature algorithm/), 1);
    // The line says what the client must change, not OpenSSL's source file and a trailing newline.
    assert.equal(
      logLines(
        /"error":"unsupported protocol: the client offered only TLS 1.2 or older; mesh connections are TLS 1.3 only"/,
      ),
      1,
    );
    assert.equal(logLines(/"msg":"inbound TLS handshake failed".*(\.\.\/deps\/openssl|\\n")/), 0);
  });

  test('a server name with a NUL byte or of 64 KB, and an empty ALPN name: an alert, then closed', async () => {
    const before = await failures('protocol');
    const answers = await Promise.all([
      sendHello(clientHello({ serverName: Buffer.from('api\0.evil.example') })),
      sendHello(clientHello({ serverName: Buffer.alloc(64_000, 'a') })),
      sendHello(clientHello({ alpn: [Buffer.from('h2'), Buffer.alloc(0)] })),
    ]);
    // A fatal alert record (21, TLS 1.2 record version, 2 bytes: level 2), and nothing else.
    for (const answer of answers) {
      assert.equal(answer.length, 7, answer.toString('hex'));
      assert.deepEqual([...answer.subarray(0, 6)], [21, 3, 3, 0, 2, 2]);
    }
    assert.equal((await failures('protocol')) - before, 3);
    assert.match((await goodRequest('/after-odd-hellos')).body, /200 OK/);
  });

  test('200 handshakes left half done end at the handshake timeout, counted, in one log line, while others are served', async () => {
    const before = await failures('timeout');
    const linesBefore = logLines(/"msg":"inbound TLS handshake failed".*"reason":"timeout"/);
    const sockets: Socket[] = [];
    const started = Date.now();
    // A valid ClientHello, answered with the server's whole flight; the client never finishes.
    const closed = Array.from({ length: 200 }, () =>
      sendHello(clientHello({ alpn: [Buffer.from([0xff, 0x00, 0x01]), Buffer.alloc(255, 0xfe)] }), (socket) =>
        sockets.push(socket),
      ),
    );
    assert.match((await goodRequest('/during-half-handshakes')).body, /200 OK/);
    const answers = await Promise.all(closed);
    const elapsedMs = Date.now() - started;
    for (const answer of answers) assert.equal(answer[0], 22, 'the server sent its flight (ServerHello)');
    assert.ok(elapsedMs >= 900 && elapsedMs < 5_000, `closed after ${elapsedMs} ms (--detect-timeout 1s)`);
    assert.equal((await failures('timeout')) - before, 200);
    assert.equal(logLines(/"msg":"inbound TLS handshake failed".*"reason":"timeout"/) - linesBefore, 1);
    for (const socket of sockets) socket.destroy();
  });

  test('a Node 24 client offering only X25519MLKEM768 is served, as the verified client', async () => {
    const { body, group } = await goodRequest('/post-quantum', 'X25519MLKEM768');
    assert.equal(group, 'X25519MLKEM768');
    assert.match(body, /\/post-quantum spiffe:\/\/cluster.local\/ns\/demo\/sa\/web/);
  });

  test('clients offering only ffdhe2048/3072, X448 or P-521 get a handshake failure, counted, one log line; X25519, P-256 and P-384 are served', async () => {
    const before = await failures('protocol');
    const expensive = ['ffdhe2048', 'ffdhe3072', 'X448', 'P-521'];
    const refused = await Promise.all(
      expensive.map((group) => sClient(inboundPort(), ['-tls1_3', '-groups', group, ...withCert(web)])),
    );
    for (const [i, out] of refused.entries()) {
      assert.match(out, /alert handshake failure/, expensive[i]);
      assert.doesNotMatch(out, /Server Temp Key/, expensive[i]);
    }
    await waitUntil(async () => (await failures('protocol')) >= before + 4, 'four protocol failures');
    assert.equal(logLines(/"msg":"inbound TLS handshake failed".*no suitable key share/), 1);
    const served = await Promise.all(
      [[], ['-groups', 'P-256'], ['-groups', 'P-384']].map((groups) =>
        sClient(inboundPort(), ['-tls1_3', ...groups, ...withCert(web)]),
      ),
    );
    const temp = served.map((out) => /Server Temp Key: ([^\n]*)/.exec(out)?.[1]);
    assert.deepEqual(temp, ['X25519, 253 bits', 'ECDH, prime256v1, 256 bits', 'ECDH, secp384r1, 384 bits']);
    for (const out of served) assert.match(out, /\/s_client spiffe:\/\/cluster.local\/ns\/demo\/sa\/web/);
  });

  test('0-RTT: tickets allow no early data, so it never reaches the app; the resumed session is still the client', async () => {
    const session = join(dir, 'session.pem');
    const early = join(dir, 'early.txt');
    await writeFile(early, 'GET /early-data HTTP/1.0\r\n\r\n');
    const first = await sClient(inboundPort(), ['-tls1_3', '-sess_out', session, ...withCert(web)]);
    assert.match(first, /Max Early Data: 0/);
    const resumed = await sClient(
      inboundPort(),
      ['-tls1_3', '-sess_in', session, '-early_data', early, ...withCert(web)],
      'GET /after-resumption HTTP/1.0\r\n\r\n',
    );
    assert.match(resumed, /Reused, TLSv1\.3/);
    assert.match(resumed, /Early data was not sent/);
    assert.match(resumed, /\/after-resumption spiffe:\/\/cluster.local\/ns\/demo\/sa\/web/);
    assert.ok(!appPaths.includes('/early-data'), appPaths.join(' '));
  });

  test("a ticket from another trust domain's sidecar does not resume: a full handshake, refused without a certificate", async () => {
    const session = join(dir, 'foreign-session.pem');
    const foreign = await sClient(foreignProxy.inbound[0]!.port, [
      '-tls1_3',
      '-sess_out',
      session,
      ...withCert(stranger),
    ]);
    assert.match(foreign, /\/s_client spiffe:\/\/other.example\/ns\/demo\/sa\/web/);
    const before = await failures('no_client_certificate');
    const paths = appPaths.length;
    const replayed = await sClient(inboundPort(), [
      '-tls1_3',
      '-sess_in',
      session,
      '-CAfile',
      web.bundleFile,
    ]);
    assert.match(replayed, /New, TLSv1\.3/);
    assert.doesNotMatch(replayed, /Reused/);
    assert.equal(appPaths.length, paths);
    await waitUntil(
      async () => (await failures('no_client_certificate')) > before,
      'a no_client_certificate refusal',
    );
  });
});

describe('the destination service against refused TLS clients', { skip: opensslMissing }, () => {
  let destination: MutualDaemon | undefined;
  let apiPort: number;
  let adminUrl: string;

  before(async () => {
    const own = await pki.workload('destination', { ns: 'mutual-system' });
    await writeFile(join(dir, 'table.yaml'), '');
    destination = await startMutualDaemon(
      [
        ...['destination', 'serve', '--file', join(dir, 'table.yaml')],
        ...['--cert', own.certFile, '--key', own.keyFile, '--bundle', own.bundleFile],
        ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      ],
      'the destination service',
    );
    apiPort = Number(destination.apiUrl.port);
    adminUrl = destination.adminUrl.origin;
  });

  after(async () => {
    await destination?.stop();
  });

  const refused = async (reason: string) =>
    metricValue(
      await (await fetch(`${adminUrl}/metrics`)).text(),
      'mutual_destination_clients_refused_total',
      {
        reason,
      },
    );

  test('clients from another CA or with an expired SVID are counted as such (not handshake_failed), logged once per reason', async () => {
    const expired = await pki.workload('expired', {
      atMs: Date.now() - 3 * 86_400_000,
      lifetimeMs: 3_600_000,
    });
    const request =
      'GET /v1/destinations/198.18.0.3:80 HTTP/1.1\r\nhost: destination\r\nconnection: close\r\n\r\n';
    for (let i = 0; i < 3; i++) {
      await sClient(apiPort, ['-tls1_3', ...withCert(stranger)], request);
      await sClient(apiPort, ['-tls1_3', ...withCert(expired)], request);
    }
    const good = await sClient(apiPort, ['-tls1_3', ...withCert(web)], request);
    assert.match(good, /HTTP\/1.1 200/);
    await waitUntil(
      async () => (await refused('unknown_authority')) === 3 && (await refused('expired')) === 3,
      '3 unknown_authority and 3 expired refusals',
    );
    assert.equal(await refused('handshake_failed'), 0);
    const lines = destination!
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"client refused"'));
    // The service checks chains itself after the handshake (bbc8a87): one line per reason.
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.deepEqual(lines.map((line) => JSON.parse(line).reason).sort(), ['expired', 'unknown_authority']);
    // Each names the client.
    for (const line of lines) assert.equal(JSON.parse(line).remote, '127.0.0.1', line);
  });
});

describe('the identity service against clients offering only expensive key-exchange groups', {
  skip: opensslMissing,
}, () => {
  let identityDir: string;
  let identity: IdentityServiceProcess;
  before(async () => {
    identityDir = await mkdtemp(join(tmpdir(), 'mutual-openssl-hostile-identity-'));
    await createCa(join(identityDir, 'ca'));
    // A 3-second SVID: the service renews its own (setSecureContext) every ~2 s.
    identity = await startIdentityService(join(identityDir, 'ca'), join(identityDir, 'state'), [
      ...['--lifetime', '3s', '--skew', '0s'],
    ]);
  });
  after(async () => {
    await identity?.stop();
    if (identityDir) await rm(identityDir, { recursive: true, force: true });
  });

  test('ffdhe2048, X448 and P-521 get a handshake failure, counted, also after the service renews its SVID; a default client is served', async () => {
    const port = Number(identity.apiUrl.port);
    const refusals = async () =>
      metricValue(
        await (await fetch(new URL('/metrics', identity.adminUrl))).text(),
        'mutual_identity_certificates_refused_total',
        { reason: 'MUTUAL_IDENTITY_REQUEST_INVALID' },
      );
    const before = await refusals();
    const refused = await Promise.all(
      ['ffdhe2048', 'X448', 'P-521'].map((group) => sClient(port, ['-tls1_3', '-groups', group])),
    );
    for (const out of refused) assert.match(out, /alert handshake failure/);
    await waitUntil(async () => (await refusals()) >= before + 3, 'three refused handshakes');
    const served = await sClient(port, ['-tls1_3'], 'GET /v1/bundle HTTP/1.0\r\n\r\n');
    assert.match(served, /Server Temp Key: X25519/);
    assert.match(served, /HTTP\/1\.1 200 OK/);
    // The context swapped in at renewal keeps the groups.
    const servedPem = (out: string) =>
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(out)?.[0];
    const first = servedPem(served);
    await waitUntil(async () => servedPem(await sClient(port, ['-tls1_3'], '')) !== first, 'a renewed SVID');
    assert.match(await sClient(port, ['-tls1_3', '-groups', 'P-521']), /alert handshake failure/);
  });
});
