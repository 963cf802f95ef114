// Idle timeouts against a real pair of sidecars (client → explicit upstream → mTLS → inbound →
// app), on both sides: an HTTP/2 stream whose client stopped reading while the app keeps sending
// is reset both ways after --stream-idle-timeout, even while the client keeps another stream on
// the same connection busy; a client connection with nothing in flight (HTTP/2 without a stream,
// an opaque TCP or upgraded connection without a byte either way) is closed after --idle-timeout.
// Each time, what is still in use on the same proxy is not touched.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as connectHttp2,
  constants,
  createServer as createHttp2Server,
  type Http2Server,
  type ServerHttp2Stream,
} from 'node:http2';
import {
  type AddressInfo,
  connect,
  createServer as createTcpServer,
  type Server,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

/** Per side: the outbound's timeouts are shorter, so along the pair it is the outbound that acts. */
const TIMEOUTS = {
  outbound: { streamIdleMs: 400, idleMs: 700 },
  inbound: { streamIdleMs: 600, idleMs: 1_000 },
} as const;
type Side = keyof typeof TIMEOUTS;
/** The busy stream or connection the others must not disturb: a byte every 100 ms for 2.5 s. */
const TRICKLE_CHUNKS = 25;
const TRICKLE_INTERVAL_MS = 100;

/** Without the timeouts these tests would wait forever for a close. */
const TEST_TIMEOUT_MS = 20_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('idle timeouts on real proxies', () => {
  let dir: string;
  let h2App: Http2Server;
  let echoApp: Server;
  let upgradeApp: HttpServer;
  let server: ProxyProcess;
  let client: ProxyProcess;
  let clientTls: { key: Buffer; cert: Buffer; ca: Buffer };
  /** How each /stream stream ended at the app: its RST_STREAM code. */
  const appStreamCodes: number[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-idle-'));
    const pki = await createTestPki(join(dir, 'pki'));
    const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
    clientTls = {
      key: await readFile(web!.keyFile),
      cert: await readFile(web!.certFile),
      ca: await readFile(web!.bundleFile),
    };
    h2App = createHttp2Server().on('stream', (stream: ServerHttp2Stream, headers) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      if (headers[':path'] === '/stream') {
        // Sends for as long as it may: the client's window decides.
        stream.once('close', () => appStreamCodes.push(stream.rstCode));
        const chunk = Buffer.alloc(16 * 1024, 1);
        const pump = () => {
          while (!stream.destroyed && stream.write(chunk));
          if (!stream.destroyed) stream.once('drain', pump);
        };
        return pump();
      }
      if (headers[':path'] === '/trickle') {
        let sent = 0;
        const timer = setInterval(() => {
          if (stream.destroyed) return clearInterval(timer);
          stream.write('x');
          if (++sent === TRICKLE_CHUNKS) {
            clearInterval(timer);
            stream.end();
          }
        }, TRICKLE_INTERVAL_MS);
        return;
      }
      stream.end('ok');
    });
    echoApp = createTcpServer((socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    upgradeApp = createHttpServer((_request, response) => response.end('no upgrade')).on(
      'upgrade',
      (_request, socket: Socket) => {
        socket.on('error', () => {});
        socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
        socket.pipe(socket);
      },
    );
    const apps = [h2App, echoApp, upgradeApp];
    await Promise.all(apps.map((app) => new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))));
    const timeouts = (side: Side) => [
      ...['--stream-idle-timeout', `${TIMEOUTS[side].streamIdleMs}ms`],
      ...['--idle-timeout', `${TIMEOUTS[side].idleMs}ms`],
    ];
    server = await startProxyProcess([
      ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
      ...apps.flatMap((app) => ['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`]),
      ...['--admin-listen', '127.0.0.1:0', ...timeouts('inbound')],
    ]);
    client = await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...server.inbound.flatMap((inbound) => [
        '--upstream',
        `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${inbound.port}`,
      ]),
      ...['--admin-listen', '127.0.0.1:0', ...timeouts('outbound')],
    ]);
    await Promise.all([server.untilReady(), client.untilReady()]);
  });

  after(async () => {
    await Promise.all([server?.stop(), client?.stop()]);
    for (const app of [h2App, echoApp, upgradeApp]) app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A byte stream to the side's listener `index` (0: h2 app, 1: echo app, 2: upgrade app). */
  async function openSocket(side: Side, index: number): Promise<Socket | TLSSocket> {
    const socket =
      side === 'outbound'
        ? connect(client.outbound[index]!.port, '127.0.0.1')
        : tlsConnect({
            host: '127.0.0.1',
            port: server.inbound[index]!.port,
            ...clientTls,
            // The SPIFFE ID is the server's name, and this test is not about checking it.
            checkServerIdentity: () => undefined,
          });
    await new Promise((resolve, reject) => {
      socket.once(side === 'outbound' ? 'connect' : 'secureConnect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }

  async function openSession(side: Side): Promise<ClientHttp2Session> {
    const socket = await openSocket(side, 0);
    const session = connectHttp2('http://emoji', { createConnection: () => socket });
    session.on('error', () => {});
    // A stream the client does not read must not stall the others on the connection's window.
    await new Promise((resolve) => session.once('connect', resolve));
    session.setLocalWindowSize(64 * 1024 * 1024);
    return session;
  }

  /** Reads a stream to its end: status, body length, and its RST_STREAM code once closed. */
  function read(stream: ClientHttp2Stream): Promise<{ status: number; bytes: number; code: number }> {
    return new Promise((resolve) => {
      let status = 0;
      let bytes = 0;
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      stream.on('error', () => {});
      stream.once('close', () => resolve({ status, bytes, code: stream.rstCode ?? -1 }));
    });
  }

  const proxyOf = (side: Side) => (side === 'outbound' ? client : server);
  const count = async (side: Side, name: string, labels: Record<string, string>) =>
    metricValue(await proxyOf(side).metrics(), name, { direction: side, ...labels });
  const idleClosed = (side: Side, protocol: string) =>
    count(side, 'mutual_connections_idle_closed_total', { protocol });

  for (const side of ['outbound', 'inbound'] as const) {
    const { streamIdleMs, idleMs } = TIMEOUTS[side];

    test(`${side}: streams whose client stopped reading are reset both ways; a busy stream on the same connection finishes`, {
      timeout: TEST_TIMEOUT_MS,
    }, async () => {
      const resetsBefore = await count(side, 'mutual_http2_streams_idle_reset_total', {});
      const logPattern = /HTTP\/2 stream (from the app )?reset: nothing read or sent/g;
      const logsBefore = proxyOf(side).output().match(logPattern)?.length ?? 0;
      const appCodesBefore = appStreamCodes.length;
      const session = await openSession(side);
      const startedMs = Date.now();
      // Two streams never read (their window fills, the app keeps sending), one read as it comes.
      const stalled = [1, 2].map(() => {
        const stream = session.request({ ':path': '/stream' });
        stream.on('error', () => {});
        return new Promise<{ code: number; afterMs: number }>((resolve) =>
          stream.once('close', () =>
            resolve({ code: stream.rstCode ?? -1, afterMs: Date.now() - startedMs }),
          ),
        );
      });
      const trickle = read(session.request({ ':path': '/trickle' }));
      const [first, second] = await Promise.all(stalled);
      // Node's own stream timeout would have waited as long as the trickle kept the connection
      // sending: the stalled streams had to go before it ended.
      for (const closed of [first!, second!]) {
        assert.equal(closed.code, constants.NGHTTP2_CANCEL);
        // Bounds are loose: the proxy's clock starts before the client sees its last byte, and CI is loaded.
        assert.ok(closed.afterMs >= streamIdleMs * 0.5, `reset after ${closed.afterMs} ms`);
        assert.ok(closed.afterMs < TRICKLE_CHUNKS * TRICKLE_INTERVAL_MS, `reset after ${closed.afterMs} ms`);
      }
      assert.deepEqual(await trickle, {
        status: 200,
        bytes: TRICKLE_CHUNKS,
        code: constants.NGHTTP2_NO_ERROR,
      });
      // The app's streams were cancelled too, not left sending into the proxy.
      await waitUntil(
        async () => appStreamCodes.length === appCodesBefore + 2,
        'the app to see its streams end',
      );
      assert.deepEqual(appStreamCodes.slice(appCodesBefore), [
        constants.NGHTTP2_CANCEL,
        constants.NGHTTP2_CANCEL,
      ]);
      assert.equal(await count(side, 'mutual_http2_streams_idle_reset_total', {}), resetsBefore + 2);
      const logs = proxyOf(side).output().match(logPattern)?.length ?? 0;
      assert.equal(logs - logsBefore, 1, 'logged once per connection');
      session.destroy();
    });

    test(`${side}: an HTTP/2 connection without a stream is closed after the idle timeout; one with a stream open longer stays`, {
      timeout: TEST_TIMEOUT_MS,
    }, async () => {
      const closedBefore = await idleClosed(side, 'http2');
      const idle = await openSession(side);
      const busy = await openSession(side);
      assert.equal((await read(idle.request({ ':path': '/' }))).status, 200);
      const idleSinceMs = Date.now();
      const idleGone = new Promise<{ afterMs: number; goaway?: number }>((resolve) => {
        let goaway: number | undefined;
        idle.once('goaway', (code: number) => {
          goaway = code;
        });
        idle.once('close', () => resolve({ afterMs: Date.now() - idleSinceMs, goaway }));
      });
      let isBusyClosed = false;
      busy.once('close', () => {
        isBusyClosed = true;
      });
      const trickle = read(busy.request({ ':path': '/trickle' }));
      const gone = await idleGone;
      assert.equal(gone.goaway, constants.NGHTTP2_NO_ERROR);
      assert.ok(
        gone.afterMs >= idleMs * 0.5 && gone.afterMs < idleMs + 3_000,
        `closed after ${gone.afterMs} ms`,
      );
      // The busy connection's stream outlives the idle timeout several times over.
      assert.deepEqual(await trickle, {
        status: 200,
        bytes: TRICKLE_CHUNKS,
        code: constants.NGHTTP2_NO_ERROR,
      });
      assert.equal(isBusyClosed, false);
      await waitUntil(async () => isBusyClosed, 'the busy connection to close once idle');
      assert.equal(await idleClosed(side, 'http2'), closedBefore + 2);
    });

    for (const [protocol, index, opening] of [
      ['opaque', 1, '\x00hello\n'],
      ['upgrade', 2, 'GET /ws HTTP/1.1\r\nhost: emoji\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n'],
    ] as const) {
      test(`${side}: an ${protocol} connection with no byte either way is closed after the idle timeout; a busy one stays`, {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        const closedBefore = await idleClosed(side, protocol);
        const open = async () => {
          const socket = await openSocket(side, index);
          socket.on('error', () => {});
          let received = '';
          let lastDataMs = 0;
          socket.on('data', (chunk: Buffer) => {
            received += chunk.toString('latin1');
            lastDataMs = Date.now();
          });
          const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
          socket.write(opening);
          const echoed = protocol === 'opaque' ? opening : 'upgrade: echo';
          await waitUntil(async () => received.includes(echoed), `the ${protocol} connection to answer`);
          return { socket, closed, received: () => received, lastDataMs: () => lastDataMs };
        };
        const idle = await open();
        const busy = await open();
        let isBusyClosed = false;
        void busy.closed.then(() => {
          isBusyClosed = true;
        });
        for (let i = 0; i < TRICKLE_CHUNKS; i++) {
          busy.socket.write('.');
          await sleep(TRICKLE_INTERVAL_MS);
        }
        const afterMs = (await idle.closed) - idle.lastDataMs();
        assert.ok(afterMs >= idleMs * 0.5 && afterMs < idleMs + 3_000, `closed after ${afterMs} ms`);
        // Every byte of the busy connection came back, and it is still open.
        await waitUntil(async () => busy.received().endsWith('.'.repeat(TRICKLE_CHUNKS)), 'the echo');
        assert.equal(isBusyClosed, false);
        await busy.closed;
        assert.equal(await idleClosed(side, protocol), closedBefore + 2);
      });
    }
  }

  test("the outbound closes its pooled HTTP/2 session before the destination's proxy would", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const session = await openSession('outbound');
    assert.equal((await read(session.request({ ':path': '/' }))).status, 200);
    session.destroy();
    const inboundClosedBefore = await idleClosed('inbound', 'http2');
    // The pooled session to the inbound goes after 90% of the outbound's idle timeout; the
    // inbound's own (longer here, and equal in a mesh) never gets to close it.
    await waitUntil(
      async () => metricValue(await server.metrics(), 'mutual_inbound_connections_open') === 0,
      'the pooled connection to close',
    );
    await sleep(TIMEOUTS.inbound.idleMs);
    assert.equal(await idleClosed('inbound', 'http2'), inboundClosedBefore);
  });
});
