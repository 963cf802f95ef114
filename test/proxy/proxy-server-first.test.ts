// A server-speaks-first app (MySQL, SMTP, FTP …) on a port NOT listed in --opaque-ports, through a
// real pair of sidecars (client → explicit upstream → mTLS → inbound → app). The client's outbound
// waits --detect-timeout for the app's first bytes, then carries the connection as a byte stream;
// the greeting must then arrive, not after a second detection timeout on the inbound (MariaDB's
// `mysql` client took 20 s through a pair with the default 10 s). And the inbound's race with the
// app must not let a silent-then-HTTP client past request-level handling. An unmeshed client of
// the same app on a PERMISSIVE port (a migration: callers not meshed yet) gets the greeting after a
// second, not after the inbound's whole detection timeout, even on a port listed as opaque (the
// inbound still has to tell its TLS from plaintext).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const DETECT_TIMEOUT_MS = 1_000;
/** One detection timeout and change; two (the bug) is 2 s. */
const GREETING_BOUND_MS = DETECT_TIMEOUT_MS + 600;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let greeter: Server;
let httpApp: HttpServer;
let server: ProxyProcess;
let client: ProxyProcess;
/** PERMISSIVE, --detect-timeout 5s, the greeter's port listed as opaque. */
let permissive: ProxyProcess;
let clientTls: { key: Buffer; cert: Buffer; ca: Buffer };
/** x-mutual-client-id of each request the HTTP app received. */
const seenIds: string[] = [];

const listen = async (app: Server | HttpServer) => {
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  return (app.address() as AddressInfo).port;
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-server-first-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const db = await pki.workload('db');
  const app = await pki.workload('app');
  clientTls = {
    key: await readFile(app.keyFile),
    cert: await readFile(app.certFile),
    ca: await readFile(app.bundleFile),
  };
  // Greets at once, then echoes each line upper-cased.
  greeter = createServer((socket) => {
    socket.write('220 greeter ready\r\n');
    socket.on('data', (chunk) => socket.write(chunk.toString().toUpperCase()));
  });
  httpApp = createHttpServer((request, response) => {
    seenIds.push(String(request.headers['x-mutual-client-id']));
    response.end('ok');
  });
  const [greeterPort, httpPort] = [await listen(greeter), await listen(httpApp)];
  const common = [
    '--detect-timeout',
    `${DETECT_TIMEOUT_MS}ms`,
    '--opaque-ports',
    '1',
    '--admin-listen',
    '127.0.0.1:0',
  ];
  server = await startProxyProcess([
    ...['--cert', db.certFile, '--key', db.keyFile, '--bundle', db.bundleFile],
    ...['--inbound', `127.0.0.1:0=${greeterPort}`, '--inbound', `127.0.0.1:0=${httpPort}`],
    ...['--mode', 'STRICT', ...common],
  ]);
  client = await startProxyProcess([
    ...['--cert', app.certFile, '--key', app.keyFile, '--bundle', app.bundleFile],
    ...['--upstream', `127.0.0.1:0=${db.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...common,
  ]);
  permissive = await startProxyProcess([
    ...['--cert', db.certFile, '--key', db.keyFile, '--bundle', db.bundleFile],
    ...['--inbound', `127.0.0.1:0=${greeterPort}`, '--mode', 'PERMISSIVE', '--detect-timeout', '5s'],
    ...['--opaque-ports', String(greeterPort), '--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady(), permissive.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop(), permissive?.stop()]);
  greeter?.close();
  httpApp?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Resolves with what has arrived once it includes `text`. */
function readUntil(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      if (data.includes(text)) resolve(data);
    });
    socket.once('close', () => reject(new Error(`closed before ${JSON.stringify(text)}: ${data}`)));
  });
}

test('a greeting on a port not listed as opaque arrives after one detection timeout, not two', async () => {
  const started = Date.now();
  const socket = connect(client.outbound[0]!.port, '127.0.0.1');
  try {
    await readUntil(socket, '220 greeter ready\r\n');
    const elapsedMs = Date.now() - started;
    assert.ok(
      elapsedMs >= DETECT_TIMEOUT_MS - 50,
      `the outbound waits its detection timeout (${elapsedMs} ms)`,
    );
    assert.ok(
      elapsedMs < GREETING_BOUND_MS,
      `greeting after ${elapsedMs} ms, not within ${GREETING_BOUND_MS}`,
    );
    // Then a conversation, both ways, on the same connection.
    const echoed = readUntil(socket, 'HELLO\r\n');
    socket.write('hello\r\n');
    await echoed;
  } finally {
    socket.destroy();
  }
});

test('a meshed client silent past the race, then speaking HTTP, still gets request-level handling', async () => {
  const tls = tlsConnect({
    host: '127.0.0.1',
    port: server.inbound[1]!.port,
    ...clientTls,
    checkServerIdentity: () => undefined,
  });
  try {
    await new Promise((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
    await sleep(400);
    const answer = readUntil(tls, 'ok');
    tls.write(
      'GET / HTTP/1.1\r\nHost: db\r\nx-mutual-client-id: spiffe://cluster.local/ns/demo/sa/forged\r\n\r\n',
    );
    assert.match(await answer, /^HTTP\/1\.1 200/);
    assert.deepEqual(seenIds, ['spiffe://cluster.local/ns/demo/sa/app']);
  } finally {
    tls.destroy();
  }
});

test('an unmeshed client on a PERMISSIVE port gets the greeting after a second, not the 5 s detection timeout', async () => {
  const started = Date.now();
  const socket = connect(permissive.inbound[0]!.port, '127.0.0.1');
  try {
    await readUntil(socket, '220 greeter ready\r\n');
    const elapsedMs = Date.now() - started;
    assert.ok(elapsedMs < 2_000, `greeting after ${elapsedMs} ms`);
    const echoed = readUntil(socket, 'PLAIN\r\n');
    socket.write('plain\r\n');
    await echoed;
  } finally {
    socket.destroy();
  }
});
