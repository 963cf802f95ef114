// The client proxy's side of HTTP/2: the app's h2 connections end at its outbound, and their
// streams travel over one multiplexed mTLS connection per destination — so many app connections
// cost one handshake, each request is counted on this side, and a destination that cannot be
// reached is a per-stream 502 (gRPC UNAVAILABLE) naming the reason, not a dropped connection.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import {
  type ClientHttp2Session,
  connect,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
} from '../../src/testing/mesh-pki.ts';

interface Answer {
  headers: IncomingHttpHeaders;
  body: string;
  trailers: IncomingHttpHeaders;
}

function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const answer: Answer = { headers: {}, body: '', trailers: {} };
    stream.on('response', (received) => {
      answer.headers = received;
    });
    stream.on('trailers', (received) => {
      answer.trailers = received;
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      answer.body += chunk;
    });
    stream.on('error', reject);
    stream.on('close', () => resolve(answer));
    if (body !== undefined) stream.end(body);
  });
}

/** Ports that refuse connections: a listener opened and closed again. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('HTTP/2 from the app: one multiplexed mTLS connection per destination', () => {
  let dir: string;
  let app: Http2Server;
  let server: ProxyProcess;
  let client: ProxyProcess;
  let emojiId: string;
  let webId: string;
  const sessions: ClientHttp2Session[] = [];

  const open = (port: number) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    sessions.push(session);
    return session;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-h2-outbound-'));
    const pki = await createTestPki(join(dir, 'pki'));
    const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
    emojiId = emoji!.spiffeId;
    webId = web!.spiffeId;
    app = createServer();
    app.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(
          `client=${headers['x-mutual-client-id'] ?? ''} authority=${headers[':authority']} body=${Buffer.concat(chunks)}`,
        );
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    server = await startProxyProcess([
      ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
      ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
    ]);
    client = await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emojiId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--upstream', `127.0.0.1:0=${emojiId}@127.0.0.1:${await closedPort()}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    await Promise.all([server.untilReady(), client.untilReady()]);
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await Promise.all([client, server].filter(Boolean).map((proxy) => proxy.stop()));
    app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('five app connections share one mTLS connection; every stream is answered with its identity', async () => {
    const before = metricValue(await server.metrics(), 'mutual_inbound_connections_total', {
      client_id: webId,
    });
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, connection) => {
        const session = open(client.outbound[0]!.port);
        return Promise.all(
          Array.from({ length: 4 }, (_, call) =>
            request(
              session,
              { ':method': 'POST', ':path': '/demo.Emoji/List', 'content-type': 'application/grpc' },
              `c${connection}s${call}`,
            ),
          ),
        );
      }),
    );
    for (const [connection, calls] of answers.entries()) {
      for (const [call, answer] of calls.entries()) {
        assert.equal(answer.headers[':status'], 200);
        assert.equal(answer.trailers['grpc-status'], '0');
        assert.ok(answer.body.startsWith(`client=${webId} `), answer.body);
        assert.match(answer.body, new RegExp(`body=c${connection}s${call}$`));
        // The app's own authority travels on, as it would have without the proxy.
        assert.match(answer.body, new RegExp(`authority=127\\.0\\.0\\.1:${client.outbound[0]!.port} `));
      }
    }
    const after = metricValue(await server.metrics(), 'mutual_inbound_connections_total', {
      client_id: webId,
    });
    assert.equal(after - before, 1, 'one mTLS connection for all five app connections');
  });

  test('the client proxy counts each HTTP/2 request with its status, method and destination', async () => {
    const session = open(client.outbound[0]!.port);
    const counts = async () => {
      const text = await client.metrics();
      return {
        requests: metricValue(text, 'mutual_outbound_http_requests_total', {
          server_id: emojiId,
          destination: `127.0.0.1:${server.inbound[0]!.port}`,
          method: 'GET',
          status_code: '200',
        }),
        timed: metricValue(text, 'mutual_outbound_http_request_duration_seconds_count', {
          status_code: '200',
        }),
      };
    };
    const before = await counts();
    for (let i = 0; i < 3; i++) await request(session, { ':path': '/one' });
    const after = await counts();
    assert.equal(after.requests - before.requests, 3);
    assert.equal(after.timed - before.timed, 3);
  });

  test('an unreachable destination answers each stream 502 / UNAVAILABLE with the reason; the connection lives on', async () => {
    const session = open(client.outbound[1]!.port);
    for (let i = 0; i < 2; i++) {
      const answer = await request(session, {
        ':method': 'POST',
        ':path': '/demo.Emoji/List',
        'content-type': 'application/grpc',
      });
      assert.equal(answer.headers[':status'], 502);
      assert.equal(answer.headers['grpc-status'], '14');
      assert.equal(answer.headers['x-mutual-proxy-error'], 'connect_failed');
      assert.match(
        String(answer.headers['grpc-message']),
        /no answer from spiffe:\/\/.+\/emoji .*connect_failed/,
      );
    }
    const plain = await request(session, { ':path': '/plain' });
    assert.equal(plain.headers[':status'], 502);
    assert.match(plain.body, /^mutual: no answer from /);
    assert.equal(session.closed, false);
  });

  test('an app header block over the limit resets that stream only', async () => {
    const session = open(client.outbound[0]!.port);
    const big = request(session, { ':path': '/big', 'x-big': 'x'.repeat(70 * 1024) }).then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code ?? 'error',
    );
    assert.notEqual(await big, 'answered');
    const next = await request(open(client.outbound[0]!.port), { ':path': '/after' });
    assert.equal(next.headers[':status'], 200);
  });
});
