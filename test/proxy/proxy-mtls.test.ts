// The sidecar end to end, as real processes: two proxies, real apps, real TLS, and peers nobody
// here wrote (openssl s_client, curl). Each refused peer is counted in metrics and the proxy
// keeps serving everyone else.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, createServer as createHttpServer, request, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { allocateLoopbackPorts } from '../../src/mesh/processes.ts';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);
const listen = async <T extends Server | ReturnType<typeof createTcpServer>>(server: T) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/**
 * A port nothing listens on right now (the flag under test names an upstream by its address),
 * outside the ephemeral range, so no other test's listen(0) or outgoing connection takes it first.
 */
async function freePort(): Promise<number> {
  return (await allocateLoopbackPorts(1))[0]!;
}

/** Sends raw bytes, half-closes, and collects whatever comes back until the peer closes. */
function exchange(
  port: number,
  payload: Buffer | string,
  { halfClose = true } = {},
): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve({ data, error: error.code }));
    socket.on('close', () => resolve({ data }));
    socket.write(payload);
    if (halfClose) socket.end();
  });
}

async function s_client(port: number, args: string[], input = 'GET / HTTP/1.0\r\n\r\n'): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-quiet', '-verify_quiet', ...args],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill(), 8_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe('sidecar proxy between two workloads', () => {
  let dir: string;
  let pki: TestPki;
  let web: WorkloadFiles;
  let emoji: WorkloadFiles;
  let server: ProxyProcess;
  let client: ProxyProcess;
  let appRequests = 0;
  let httpApp: Server;
  let permissiveApp: Server;
  const tcpApp = createTcpServer({ allowHalfOpen: true }, (socket) => {
    socket.pipe(socket);
  });
  const tlsApp = createTlsServer({}, (socket) => socket.end('app-level TLS works\n'));
  let ports: { http: number; permissive: number; tcp: number; tls: number };
  let fullHandshakePort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-proxy-'));
    pki = await createTestPki(join(dir, 'pki'));
    web = await pki.workload('web');
    emoji = await pki.workload('emoji');
    const appHandler = (
      request: import('node:http').IncomingMessage,
      response: import('node:http').ServerResponse,
    ) => {
      appRequests++;
      // An app that takes the request and drops the connection without answering.
      if (request.url === '/die') return void request.socket.destroy();
      response.end(
        JSON.stringify({ path: request.url, clientId: request.headers['x-mutual-client-id'] ?? null }),
      );
    };
    httpApp = createHttpServer(appHandler);
    // An upgrade (as WebSocket does): 101, then the connection echoes bytes, prefixed by who called.
    httpApp.on('upgrade', (request, socket) => {
      const caller = String(request.headers['x-mutual-client-id'] ?? 'nobody');
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
      socket.on('data', (chunk: Buffer) => socket.write(`${caller}:${chunk.toString()}`));
      socket.on('end', () => socket.end());
    });
    permissiveApp = createHttpServer(appHandler);
    // The app's own TLS, carried opaquely inside the mesh's mTLS.
    const appTls = await pki.workload('app-tls', { spiffeId: 'spiffe://cluster.local/ns/demo/sa/app-tls' });
    tlsApp.setSecureContext({ key: await readFile(appTls.keyFile), cert: await readFile(appTls.certFile) });
    ports = {
      http: await listen(httpApp),
      permissive: await listen(permissiveApp),
      tcp: await listen(tcpApp),
      tls: await listen(tlsApp),
    };
    server = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `127.0.0.1:0=${ports.http}`, '--inbound', `127.0.0.1:0=${ports.permissive}`],
      ...['--inbound', `127.0.0.1:0=${ports.tcp}`, '--inbound', `127.0.0.1:0=${ports.tls}`],
      ...['--mode', 'STRICT', '--port-mode', `${ports.permissive}=PERMISSIVE`, '--detect-timeout', '2s'],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    const [httpIn, permissiveIn, tcpIn, tlsIn] = server.inbound;
    fullHandshakePort = await freePort();
    client = await startProxyProcess([
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${httpIn!.port}`],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${tcpIn!.port}`],
      ...['--upstream', `127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/voting@127.0.0.1:${httpIn!.port}`],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${tlsIn!.port}`],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${permissiveIn!.port}`],
      ...['--upstream', `127.0.0.1:${fullHandshakePort}=${emoji.spiffeId}@127.0.0.1:${tcpIn!.port}`],
      ...['--upstream-full-handshake', `127.0.0.1:${fullHandshakePort}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    await Promise.all([server.untilReady(), client.untilReady()]);
  });

  after(async () => {
    await Promise.all([server?.stop(), client?.stop()]);
    for (const app of [httpApp, permissiveApp, tcpApp, tlsApp]) app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('HTTP through both proxies reaches the app with the verified client identity, never a forged one', async () => {
    const response = await fetch(`http://127.0.0.1:${client.outbound[0]!.port}/hello`, {
      headers: { 'x-mutual-client-id': 'spiffe://cluster.local/ns/demo/sa/admin' },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { path: '/hello', clientId: web.spiffeId });
    assert.ok(
      metricValue(await client.metrics(), 'mutual_outbound_http_requests_total', {
        tls: 'true',
        client_id: web.spiffeId,
        server_id: emoji.spiffeId,
        method: 'GET',
        status_code: '200',
      }) >= 1,
    );
    const metrics = await server.metrics();
    assert.ok(
      metricValue(metrics, 'mutual_inbound_http_requests_total', {
        tls: 'true',
        client_id: web.spiffeId,
        status_code: '200',
      }) >= 1,
    );
  });

  test("an app that drops a request unanswered: the client gets the inbound's 502 saying so, then the next answer", async () => {
    const base = `http://127.0.0.1:${client.outbound[0]!.port}`;
    const failed = await fetch(`${base}/die`, { signal: AbortSignal.timeout(5000) });
    assert.equal(failed.status, 502);
    assert.equal(failed.headers.get('x-mutual-proxy-error'), 'app_unavailable');
    assert.match(await failed.text(), /^mutual: the app on port \d+ did not answer: /);
    const next = await fetch(`${base}/after-die`, { signal: AbortSignal.timeout(5000) });
    assert.deepEqual(await next.json(), { path: '/after-die', clientId: web.spiffeId });
  });

  test('the bytes of a keep-alive HTTP connection are counted while it is still open', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const marker = `/bytes-${randomBytes(4).toString('hex')}`;
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: client.outbound[0]!.port, path: marker, agent },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    try {
      const received = metricValue(await server.metrics(), 'mutual_inbound_received_bytes_total', {
        tls: 'true',
        client_id: web.spiffeId,
      });
      const sent = metricValue(await client.metrics(), 'mutual_outbound_sent_bytes_total', {
        tls: 'true',
        server_id: emoji.spiffeId,
      });
      // At least this request's line went each way, and its connections are still open.
      assert.ok(received >= marker.length, `inbound received ${received} bytes`);
      assert.ok(sent >= marker.length, `outbound sent ${sent} bytes`);
    } finally {
      agent.destroy();
    }
  });

  test('an HTTP upgrade through both proxies becomes a byte stream, with the caller identified', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(client.outbound[0]!.port, '127.0.0.1');
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk.toString();
        if (data.includes('\r\n\r\n') && !data.includes(':ping')) socket.write('ping');
        if (data.endsWith(':ping')) socket.end();
      });
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
      socket.write('GET /ws HTTP/1.1\r\nhost: emoji\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
    });
    assert.match(reply, /^HTTP\/1\.1 101 /);
    assert.ok(reply.endsWith(`${web.spiffeId}:ping`), reply);
  });

  test('a TCP byte stream passes both ways, with half-close kept', async () => {
    const reply = await exchange(client.outbound[1]!.port, 'ping over mTLS');
    assert.equal(reply.data, 'ping over mTLS');
    const metrics = await client.metrics();
    assert.ok(
      metricValue(metrics, 'mutual_outbound_connections_total', { tls: 'true', server_id: emoji.spiffeId }) >=
        1,
    );
  });

  test('new connections resume the TLS session, except through an upstream marked --upstream-full-handshake', async () => {
    const resumed = async () => metricValue(await client.metrics(), 'mutual_outbound_tls_resumed_total', {});
    const fullPort = client.outbound[5]!.port;
    assert.equal(fullPort, fullHandshakePort);
    const before = await resumed();
    for (let i = 0; i < 3; i++) assert.equal((await exchange(fullPort, `full ${i}`)).data, `full ${i}`);
    assert.equal(await resumed(), before, 'no session offered on the full-handshake upstream');
    for (let i = 0; i < 3; i++) {
      assert.equal((await exchange(client.outbound[1]!.port, `resumed ${i}`)).data, `resumed ${i}`);
    }
    assert.ok((await resumed()) >= before + 2, 'the ordinary upstream resumes its sessions');
  });

  test('the client proxy refuses a server that is not the expected identity', async () => {
    // HTTP gets an answer from the proxy naming the reason (Linkerd's l5d-proxy-error), never the app's.
    const before = appRequests;
    const reply = await exchange(client.outbound[2]!.port, 'GET / HTTP/1.0\r\n\r\n');
    assert.match(reply.data, /^HTTP\/1\.1 502 /);
    assert.match(reply.data, /x-mutual-proxy-error: wrong_identity\r\n/i);
    assert.equal(appRequests, before);
    assert.ok(
      metricValue(await client.metrics(), 'mutual_outbound_http_requests_total', {
        server_id: 'spiffe://cluster.local/ns/demo/sa/voting',
        status_code: '502',
      }) >= 1,
      'the refused request is counted as a 502 to the expected identity',
    );
    // Any other byte stream is reset.
    const opaque = await exchange(client.outbound[2]!.port, 'not http at all');
    assert.equal(opaque.data, '');
    const metrics = await client.metrics();
    assert.ok(
      metricValue(metrics, 'mutual_tls_handshake_failures_total', {
        direction: 'outbound',
        reason: 'wrong_identity',
      }) >= 1,
    );
  });

  test("the app's own TLS travels opaquely inside the mesh's mTLS", async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: client.outbound[3]!.port,
        rejectUnauthorized: false,
      });
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk;
      });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.equal(text, 'app-level TLS works\n');
  });

  test('plaintext to a STRICT port is closed before any byte reaches the app', async () => {
    const before = appRequests;
    const reply = await exchange(server.inbound[0]!.port, 'GET /secret HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.doesNotMatch(reply.data, /HTTP\/1.1 200/);
    assert.equal(appRequests, before);
    assert.ok(
      metricValue(await server.metrics(), 'mutual_inbound_refused_total', { reason: 'plaintext_strict' }) >=
        1,
    );
  });

  test('a TCP probe (connect, then close without a byte) is closed without counting a refused client', async () => {
    const refused = async () => metricValue(await server.metrics(), 'mutual_inbound_refused_total');
    const before = await refused();
    await new Promise((resolve, reject) => {
      const probe = connect(server.inbound[0]!.port, '127.0.0.1');
      probe.once('connect', () => probe.end());
      probe.once('close', resolve);
      probe.once('error', reject);
      probe.resume();
    });
    assert.equal(await refused(), before, 'a health check or port scan is not a plaintext client');
  });

  test('a PERMISSIVE port accepts plaintext and strips a forged identity header', async () => {
    const reply = await exchange(
      server.inbound[1]!.port,
      'GET /open HTTP/1.1\r\nhost: x\r\nx-mutual-client-id: spiffe://cluster.local/ns/demo/sa/admin\r\nconnection: close\r\n\r\n',
    );
    assert.match(reply.data, /HTTP\/1.1 200/);
    assert.match(reply.data, /"clientId":null/);
    const viaMesh = await (await fetch(`http://127.0.0.1:${client.outbound[4]!.port}/meshed`)).json();
    assert.deepEqual(viaMesh, { path: '/meshed', clientId: web.spiffeId });
    assert.ok(
      metricValue(await server.metrics(), 'mutual_inbound_http_requests_total', {
        tls: 'no_identity',
        no_tls_reason: 'loopback',
      }) >= 1,
    );
  });

  test('curl with a client certificate is served over mTLS by the inbound port', async () => {
    const { stdout } = await run('curl', [
      ...['-sS', '--cert', web.certFile, '--key', web.keyFile, '--cacert', web.bundleFile, '-k'],
      `https://127.0.0.1:${server.inbound[0]!.port}/from-curl`,
    ]);
    assert.deepEqual(JSON.parse(stdout), { path: '/from-curl', clientId: web.spiffeId });
  });

  test('openssl s_client with a good certificate is served', async () => {
    const out = await s_client(server.inbound[0]!.port, [
      '-cert',
      web.certFile,
      '-cert_chain',
      web.certFile,
      '-key',
      web.keyFile,
      '-CAfile',
      web.bundleFile,
    ]);
    assert.match(out, /HTTP\/1.1 200/);
    assert.match(out, new RegExp(web.spiffeId.replaceAll('/', '\\/')));
  });

  test('openssl s_client sending only its leaf (no -cert_chain) is served: the issuer they share completes it', async () => {
    // Before: refused as unknown_authority (UNABLE_TO_VERIFY_LEAF_SIGNATURE), the client saw only
    // "unexpected eof". A leaf-only stranger is still refused (the test below, another CA).
    const out = await s_client(server.inbound[0]!.port, [
      ...['-cert', web.certFile, '-key', web.keyFile, '-CAfile', web.bundleFile],
    ]);
    assert.match(out, /HTTP\/1.1 200/);
    assert.match(out, new RegExp(web.spiffeId.replaceAll('/', '\\/')));
  });

  describe('hostile peers are refused, counted, and do not disturb others', () => {
    const refusedBy = async (reason: string) =>
      metricValue(await server.metrics(), 'mutual_tls_handshake_failures_total', {
        direction: 'inbound',
        reason,
      });

    test('openssl s_client without a certificate', async () => {
      const before = appRequests;
      const out = await s_client(server.inbound[0]!.port, ['-CAfile', web.bundleFile]);
      assert.doesNotMatch(out, /HTTP\/1.1 200/);
      // Refused inside the handshake with TLS alert 116, as nginx does, not by an end of stream.
      assert.match(out, /alert certificate required|alert number 116/);
      assert.equal(appRequests, before);
      assert.ok((await refusedBy('no_client_certificate')) >= 1);
    });

    test('openssl s_client with a certificate from another CA', async () => {
      const otherPki = await createTestPki(join(dir, 'other'));
      const stranger = await otherPki.workload('web');
      const out = await s_client(server.inbound[0]!.port, [
        '-cert',
        stranger.certFile,
        '-key',
        stranger.keyFile,
      ]);
      assert.doesNotMatch(out, /HTTP\/1.1 200/);
      assert.ok((await refusedBy('unknown_authority')) >= 1);
    });

    test('openssl s_client with an expired certificate', async () => {
      const expired = await pki.workload('expired', {
        atMs: Date.now() - 3 * 86_400_000,
        lifetimeMs: 3_600_000,
      });
      const out = await s_client(server.inbound[0]!.port, [
        '-cert',
        expired.certFile,
        '-cert_chain',
        expired.certFile,
        '-key',
        expired.keyFile,
      ]);
      assert.doesNotMatch(out, /HTTP\/1.1 200/);
      assert.ok((await refusedBy('expired')) >= 1);
    });

    test('random bytes that start like a TLS record, and random bytes that do not', async () => {
      const tlsLike = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), randomBytes(64)]);
      assert.equal((await exchange(server.inbound[0]!.port, tlsLike)).data.includes('clientId'), false);
      assert.equal(
        (await exchange(server.inbound[0]!.port, randomBytes(512))).data.includes('clientId'),
        false,
      );
      assert.ok((await refusedBy('protocol')) >= 1);
    });

    test('a client that rejects our certificate and hangs up mid-handshake: closed at once, counted as client_closed', async () => {
      // As a sidecar of another mesh does: it trusts other roots, so it refuses ours and closes.
      const otherPki = await createTestPki(join(dir, 'other-roots'));
      const stranger = await otherPki.workload('web');
      const refused = await new Promise<Error>((resolve) => {
        const socket = tlsConnect({
          port: server.inbound[0]!.port,
          host: '127.0.0.1',
          ca: readFileSync(stranger.bundleFile),
          cert: readFileSync(stranger.certFile),
          key: readFileSync(stranger.keyFile),
          checkServerIdentity: () => undefined,
        });
        socket.on('secureConnect', () => resolve(new Error('the handshake completed')));
        socket.on('error', resolve);
      });
      assert.match(refused.message, /unable to get local issuer certificate/);
      // Before, the sidecar missed the client's FIN and held the connection until the handshake
      // timeout, then blamed the client for a 'timeout'.
      await waitUntil(async () => (await refusedBy('client_closed')) >= 1, 'a client_closed refusal');
    });

    test('a ClientHello trickled one byte at a time times out while others are served', async () => {
      const socket = connect(server.inbound[0]!.port, '127.0.0.1');
      socket.on('error', () => {});
      const closed = new Promise((resolve) => socket.on('close', resolve));
      const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < hello.length && !socket.destroyed) socket.write(hello.subarray(sent, ++sent));
      }, 300);
      const served = await fetch(`http://127.0.0.1:${client.outbound[0]!.port}/meanwhile`);
      assert.equal(served.status, 200);
      await closed;
      clearInterval(timer);
      assert.ok((await refusedBy('timeout')) >= 1);
    });
  });
});
