// A client that goes away at any stage of an exchange must cost nothing but its own exchange: no
// sidecar may exit or stop answering. Earlier a client gone mid-upload killed both sidecars
// (47df29d); this matrix cuts the client at every stage of HTTP/1, HTTP/2 and opaque TCP, by FIN,
// by RST and by half-close, through a real pair (the outbound, and the inbound by mTLS and by
// plaintext on its PERMISSIVE ports), and after each case asks both sidecars /live and sends a
// request that must answer 200.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import {
  type ClientHttp2Session,
  createServer as createH2Server,
  type Http2Server,
  connect as h2connect,
  type ServerHttp2Stream,
} from 'node:http2';
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Socket,
  connect as tcpConnect,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  type ProxyProcess,
  readTlsCredentials,
  startProxyProcess,
} from '../../src/testing/mesh-pki.ts';

type Via = 'outbound' | 'mtls' | 'plaintext';
const VIAS: Via[] = ['outbound', 'mtls', 'plaintext'];
type App = 'http1' | 'http2' | 'opaque';
const APPS: App[] = ['http1', 'http2', 'opaque'];

let dir: string;
let server: ProxyProcess;
let client: ProxyProcess;
let tlsOptions: { key: Buffer; cert: Buffer; ca: Buffer };
const closers: (() => void)[] = [];
const clientSockets = new Set<Socket>();
const openAppStreams = new Set<ServerHttp2Stream>();
/** What each app still has open from the inbound, and the HTTP/2 streams open at the app. */
const openAppConnections: Partial<Record<App, Set<unknown>>> = {};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function http1App(): Server {
  const app = createHttpServer((request, response) => {
    request.on('error', () => {});
    response.on('error', () => {});
    request.resume();
    if (request.url === '/slow') {
      setTimeout(() => response.end('slow\n'), 300);
      return;
    }
    if (request.url === '/stream') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const timer = setInterval(() => {
        response.write(`chunk${n++}\n`);
        if (n === 20) {
          clearInterval(timer);
          response.end();
        }
      }, 30);
      response.on('close', () => clearInterval(timer));
      return;
    }
    request.on('end', () => response.end('ok\n'));
  });
  app.on('upgrade', (_request, socket) => {
    socket.on('error', () => {});
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    socket.pipe(socket);
  });
  app.on('clientError', (_error, socket) => socket.destroy());
  return app;
}

function http2App(): Http2Server {
  const app = createH2Server();
  app.on('sessionError', () => {});
  app.on('stream', (stream, headers) => {
    openAppStreams.add(stream);
    stream.once('close', () => openAppStreams.delete(stream));
    stream.on('error', () => {});
    const path = headers[':path'];
    if (path === '/slow') {
      stream.resume();
      setTimeout(() => {
        if (!stream.destroyed) stream.respond({ ':status': 200 }, { endStream: true });
      }, 300);
      return;
    }
    if (path === '/stream' || path === '/trailers') {
      stream.respond({ ':status': 200 }, { waitForTrailers: path === '/trailers' });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-done': '1' }));
      let n = 0;
      const timer = setInterval(() => {
        if (stream.destroyed) return clearInterval(timer);
        stream.write(`chunk${n++}\n`);
        if (n === 20) {
          clearInterval(timer);
          stream.end();
        }
      }, 30);
      stream.on('close', () => clearInterval(timer));
      stream.resume();
      return;
    }
    stream.resume();
    stream.on('end', () => {
      if (!stream.destroyed) stream.respond({ ':status': 200 }, { endStream: true });
    });
  });
  return app;
}

function opaqueApp() {
  return createTcpServer((socket) => {
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      // The app's own abrupt ends, on the client's request.
      if (chunk.includes('APP-RST')) socket.resetAndDestroy();
      else if (chunk.includes('APP-FIN')) socket.end();
      else socket.write(chunk);
    });
  });
}

const inboundPort: Record<App, number> = { http1: 0, http2: 0, opaque: 0 };
const outboundPort: Record<App, number> = { http1: 0, http2: 0, opaque: 0 };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-crash-hunt-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  const web = await pki.workload('web');
  tlsOptions = await readTlsCredentials(web);
  const apps = { http1: http1App(), http2: http2App(), opaque: opaqueApp() };
  const appPorts: number[] = [];
  for (const name of APPS) {
    const app = apps[name] as Server;
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appPorts.push((app.address() as AddressInfo).port);
    // Every app connection, upgraded and HTTP/2 ones too, so none holds the test process open.
    const connections = new Set<{ destroy(): void }>();
    openAppConnections[name] = connections;
    // HTTP/2 connections end by their session (destroying the socket under a session left the
    // test process spinning).
    app.on(name === 'http2' ? 'session' : 'connection', (connection: Socket) => {
      connections.add(connection);
      connection.once('close', () => connections.delete(connection));
    });
    closers.push(() => {
      app.close();
      for (const connection of connections) connection.destroy();
    });
  }
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...appPorts.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...['--mode', 'PERMISSIVE', '--admin-listen', '127.0.0.1:0'],
  ]);
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...server.inbound.flatMap((address) => [
      '--upstream',
      `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${address.port}`,
    ]),
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
  APPS.forEach((name, i) => {
    inboundPort[name] = server.inbound[i]!.port;
    outboundPort[name] = client.outbound[i]!.port;
  });
});

after(async () => {
  for (const socket of clientSockets) socket.destroy();
  await Promise.all([server?.stop(), client?.stop()]);
  for (const close of closers) close();
  await rm(dir, { recursive: true, force: true });
});

/** A raw connection to `app` by `via`; `raw` is the TCP socket under it (for RST). */
function open(via: Via, app: App, alpn?: string[]): Promise<{ socket: Socket | TLSSocket; raw: Socket }> {
  const port = via === 'outbound' ? outboundPort[app] : inboundPort[app];
  return new Promise((resolve, reject) => {
    const raw = tcpConnect(port, '127.0.0.1');
    raw.on('error', () => {});
    clientSockets.add(raw);
    raw.once('close', () => clientSockets.delete(raw));
    raw.once('connect', () => {
      if (via !== 'mtls') return resolve({ socket: raw, raw });
      const socket = tlsConnect({
        socket: raw,
        ...tlsOptions,
        checkServerIdentity: () => undefined,
        ...(alpn ? { ALPNProtocols: alpn } : {}),
      });
      socket.on('error', () => {});
      socket.once('secureConnect', () => resolve({ socket, raw }));
    });
    raw.once('error', reject);
  });
}

// The cases of one via run one after another; the three vias at once (to stay within 30 s). A
// sidecar that dies fails the cases running beside it too: its output names the cause.
const cases: { via: Via; name: string; run: () => Promise<void> }[] = [];
function matrixCase(via: Via, name: string, run: () => Promise<void>) {
  cases.push({ via, name, run });
}

type Cut = 'fin' | 'rst' | 'half';
const CUTS: Cut[] = ['fin', 'rst', 'half'];

/** Ends the client's side the way `cut` says; 'half' then reads until the sidecar closes (3 s at most). */
async function cutConnection(cut: Cut, socket: Socket | TLSSocket, raw: Socket): Promise<void> {
  if (cut === 'rst') {
    raw.resetAndDestroy();
    return;
  }
  if (cut === 'fin') {
    socket.destroy();
    return;
  }
  socket.resume();
  // Already closed: the sidecar ended it first (an app's reset or end, a protocol error).
  if (socket.closed) return;
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.end();
  await Promise.race([closed, sleep(3000)]);
  socket.destroy();
}

/** Both sidecars alive, /live 200, and a fresh request by `via` answered 200. */
async function assertServing(via: Via, label: string): Promise<void> {
  // Give a crash caused by the cut time to happen before looking.
  await sleep(50);
  for (const [name, proxy] of [
    ['inbound', server],
    ['outbound', client],
  ] as const) {
    assert.equal(proxy.child.exitCode, null, `${label}: the ${name} sidecar exited:\n${proxy.output()}`);
    const live = await fetch(`${proxy.adminUrl}/live`, { signal: AbortSignal.timeout(3000) });
    assert.equal(live.status, 200, `${label}: ${name} /live`);
  }
  const { socket } = await open(via, 'http1');
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.write('GET /after HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n');
  await Promise.race([closed, sleep(3000)]);
  socket.destroy();
  assert.match(text, /^HTTP\/1\.1 200/, `${label}: the next request: ${JSON.stringify(text)}`);
}

// ---------------------------------------------------------------------------------------------
// HTTP/1: each stage is what the client writes (a string) or waits for (a pattern) before the cut.
const POST = 'POST /echo HTTP/1.1\r\nhost: emoji\r\n';
const CHUNKED = `${POST}transfer-encoding: chunked\r\n\r\n`;
const UPGRADE = 'GET /ws HTTP/1.1\r\nhost: emoji\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n';
const HTTP1_STAGES: Record<string, (string | RegExp | number)[]> = {
  'mid request line': ['GET /ec'],
  'mid headers': ['GET /echo HTTP/1.1\r\nhost: emoji\r\nx-a: '],
  'after headers, before the body': [`${POST}content-length: 100\r\n\r\n`],
  'mid body (content-length)': [`${POST}content-length: 100\r\n\r\n${'a'.repeat(50)}`],
  'mid body (chunked)': [`${CHUNKED}10\r\nabc`],
  'mid chunk-size line': [`${CHUNKED}5\r\nhello\r\n1`],
  'between last chunk and trailer': [`${CHUNKED}5\r\nhello\r\n0\r\n`],
  'mid trailer': [`${CHUNKED}5\r\nhello\r\n0\r\nx-trailer: 1`],
  'waiting for the answer': ['GET /slow HTTP/1.1\r\nhost: emoji\r\n\r\n', 100],
  "after the answer's headers": ['GET /stream HTTP/1.1\r\nhost: emoji\r\n\r\n', /\r\n\r\n/],
  'mid answer body': ['GET /stream HTTP/1.1\r\nhost: emoji\r\n\r\n', /chunk1/],
  'pipelined requests': [
    `GET /slow HTTP/1.1\r\nhost: emoji\r\n\r\n${POST}content-length: 3\r\n\r\nabcGET /slow HTTP/1.1\r\nhost: emoji\r\n\r\nGET /st`,
    100,
  ],
  'expect 100-continue, before the 100': [`${POST}content-length: 10\r\nexpect: 100-continue\r\n\r\n`],
  'expect 100-continue, after the 100': [
    `${POST}content-length: 10\r\nexpect: 100-continue\r\n\r\n`,
    /100 Continue/,
    'abcde',
  ],
  'upgrade, before the 101': [UPGRADE],
  'upgrade, after the 101': [UPGRADE, /101/, 'hello'],
  'upgrade, mid upgraded stream': [UPGRADE, /101/, 'x'.repeat(200_000)],
};

for (const via of VIAS) {
  for (const [stage, parts] of Object.entries(HTTP1_STAGES)) {
    matrixCase(via, `http1 ${via}: cut ${stage}`, async () => {
      for (const cut of CUTS) {
        const { socket, raw } = await open(via, 'http1');
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
        });
        for (const part of parts) {
          if (typeof part === 'string') socket.write(part);
          else if (typeof part === 'number') await sleep(part);
          else {
            for (let i = 0; i < 60 && !part.test(text); i++) await sleep(50);
            assert.match(text, part, `${via} ${stage}: waiting for ${part}`);
          }
        }
        await sleep(20);
        await cutConnection(cut, socket, raw);
        await assertServing(via, `http1 ${via} ${stage} ${cut}`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 by raw frames, for what node's client will not send (a header block cut before its
// CONTINUATION, streams after GOAWAY).
function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = frame(4, 0, 0);
// :method GET, :scheme http, :path /slow (literal), :authority emoji (literal, indexed name).
const literal = (index: number, value: string) =>
  Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value)]);
const GET_SLOW_BLOCK = Buffer.concat([
  Buffer.from([0x82, 0x86]),
  literal(0x04, '/slow'),
  literal(0x01, 'emoji'),
]);
const [END_STREAM, END_HEADERS] = [0x1, 0x4];
const HEADERS = (id: number, flags: number, block = GET_SLOW_BLOCK) => frame(1, flags, id, block);
const RST_STREAM = (id: number) => frame(3, 0, id, Buffer.from([0, 0, 0, 8]));
const GOAWAY = frame(7, 0, 0, Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]));
const H2_RAW_STAGES: Record<string, Buffer[]> = {
  'HEADERS without END_HEADERS (CONTINUATION due)': [HEADERS(1, END_STREAM)],
  'HEADERS without END_HEADERS, then RST_STREAM': [HEADERS(1, END_STREAM), RST_STREAM(1)],
  'HEADERS, half a CONTINUATION': [
    HEADERS(1, END_STREAM, GET_SLOW_BLOCK.subarray(0, 3)),
    frame(9, END_HEADERS, 1, GET_SLOW_BLOCK.subarray(3)).subarray(0, 12),
  ],
  'a stream, GOAWAY, then new streams': [
    HEADERS(1, END_STREAM | END_HEADERS),
    GOAWAY,
    HEADERS(3, END_STREAM | END_HEADERS),
    HEADERS(5, END_STREAM | END_HEADERS),
  ],
  'RST_STREAM while waiting for the answer': [HEADERS(1, END_STREAM | END_HEADERS), RST_STREAM(1)],
};

for (const via of VIAS) {
  for (const [stage, frames] of Object.entries(H2_RAW_STAGES)) {
    matrixCase(via, `http2 raw ${via}: ${stage}`, async () => {
      for (const cut of CUTS) {
        const { socket, raw } = await open(via, 'http2', ['h2']);
        socket.resume();
        socket.write(Buffer.concat([PREFACE, SETTINGS, ...frames]));
        await sleep(100);
        await cutConnection(cut, socket, raw);
        await assertServing(via, `http2 raw ${via} ${stage} ${cut}`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 by node's client: h2c to the outbound and the PERMISSIVE inbound, h2 over mTLS.
function h2session(via: Via): Promise<{ session: ClientHttp2Session; socket: Socket; raw: Socket }> {
  return open(via, 'http2', ['h2']).then(({ socket, raw }) => {
    const session = h2connect(`http://emoji`, { createConnection: () => socket });
    session.on('error', () => {});
    return { session, socket, raw };
  });
}

type H2Case = (session: ClientHttp2Session, raw: Socket) => Promise<void>;
const NGHTTP2_CANCEL = 8;
const untilEvent = (emitter: NodeJS.EventEmitter, event: string) =>
  Promise.race([new Promise((resolve) => emitter.once(event, resolve)), sleep(3000)]);
const H2_CASES: Record<string, H2Case> = {
  'RST_STREAM mid DATA': async (session) => {
    const stream = session.request({ ':method': 'POST', ':path': '/echo' });
    stream.on('error', () => {});
    stream.write(Buffer.alloc(50_000, 'a'));
    await sleep(50);
    stream.close(NGHTTP2_CANCEL);
  },
  "RST_STREAM after the answer's HEADERS": async (session) => {
    const stream = session.request({ ':path': '/stream' });
    stream.on('error', () => {});
    await untilEvent(stream, 'response');
    stream.close(NGHTTP2_CANCEL);
  },
  'RST_STREAM mid answer body': async (session) => {
    const stream = session.request({ ':path': '/stream' });
    stream.on('error', () => {});
    await untilEvent(stream, 'data');
    stream.close(NGHTTP2_CANCEL);
  },
  'RST_STREAM after the answer trailers': async (session) => {
    const stream = session.request({ ':path': '/trailers' });
    stream.on('error', () => {});
    stream.resume();
    await untilEvent(stream, 'trailers');
    stream.close(NGHTTP2_CANCEL);
  },
  'request trailers, then RST_STREAM': async (session) => {
    const stream = session.request({ ':method': 'POST', ':path': '/slow' }, { waitForTrailers: true });
    stream.on('error', () => {});
    stream.on('wantTrailers', () => {
      stream.sendTrailers({ 'x-sum': '1' });
      setImmediate(() => stream.close(NGHTTP2_CANCEL));
    });
    stream.end('body');
    await sleep(100);
  },
  'GOAWAY while a stream waits': async (session) => {
    const stream = session.request({ ':path': '/slow' });
    stream.on('error', () => {});
    await sleep(50);
    session.goaway(0);
    await sleep(50);
  },
  'session destroyed mid upload': async (session) => {
    const stream = session.request({ ':method': 'POST', ':path': '/echo' });
    stream.on('error', () => {});
    stream.write(Buffer.alloc(100_000, 'a'));
    await sleep(50);
    session.destroy();
  },
  'session destroyed mid answer': async (session) => {
    const stream = session.request({ ':path': '/stream' });
    stream.on('error', () => {});
    await untilEvent(stream, 'data');
    session.destroy();
  },
  '100 streams, then the connection reset': async (session, raw) => {
    for (let i = 0; i < 100; i++) {
      const stream = session.request({ ':path': i % 2 ? '/slow' : '/stream' });
      stream.on('error', () => {});
    }
    await sleep(80);
    raw.resetAndDestroy();
  },
  '100 streams, then the session destroyed': async (session) => {
    for (let i = 0; i < 100; i++) {
      const stream = session.request({ ':method': 'POST', ':path': '/echo' });
      stream.on('error', () => {});
      stream.write('part');
    }
    await sleep(80);
    session.destroy();
  },
};

for (const via of VIAS) {
  for (const [name, run] of Object.entries(H2_CASES)) {
    matrixCase(via, `http2 ${via}: ${name}`, async () => {
      for (const cut of CUTS) {
        const { session, socket, raw } = await h2session(via);
        await run(session, raw);
        // Then the connection itself goes, by `cut`.
        // A socket its session has destroyed is not reset again: node's resetAndDestroy() on it
        // left the test process spinning at 100% CPU (h2c, after 'session destroyed mid upload').
        if (cut === 'rst' && !session.destroyed) raw.resetAndDestroy();
        else if (cut === 'rst' || cut === 'fin' || socket.closed) session.destroy();
        else {
          socket.end();
          await Promise.race([new Promise((resolve) => session.once('close', resolve)), sleep(1000)]);
          session.destroy();
        }
        await assertServing(via, `http2 ${via} ${name} ${cut}`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Opaque TCP (the first bytes are no protocol the sidecars know, so they splice them).
const OPAQUE_STAGES: Record<string, (string | number)[]> = {
  'at once': [],
  'after the first bytes': ['\x00\x01opaque'],
  'mid transfer': ['\x00\x01opaque', 'z'.repeat(500_000)],
  'the app resets': ['\x00\x01opaque', 50, 'APP-RST', 50],
  'the app closes': ['\x00\x01opaque', 50, 'APP-FIN', 50],
};

for (const via of VIAS) {
  for (const [stage, parts] of Object.entries(OPAQUE_STAGES)) {
    matrixCase(via, `opaque ${via}: cut ${stage}`, async () => {
      for (const cut of CUTS) {
        const { socket, raw } = await open(via, 'opaque');
        socket.resume();
        for (const part of parts) {
          if (typeof part === 'string') socket.write(part);
          else await sleep(part);
        }
        await sleep(20);
        await cutConnection(cut, socket, raw);
        await assertServing(via, `opaque ${via} ${stage} ${cut}`);
      }
    });
  }
}

describe('a client cut at every stage', { concurrency: VIAS.length }, () => {
  const ordered = VIAS.map((via) => cases.filter((entry) => entry.via === via));
  for (let i = 0; i < ordered[0]!.length; i++) {
    for (const list of ordered) test(list[i]!.name, list[i]!.run);
  }
});

// A wedge would show as an exchange the app still holds for a client long gone: no opaque
// connection and no HTTP/2 stream may stay open at the apps once the matrix is done (idle
// HTTP/1 keep-alive connections and HTTP/2 sessions of the inbound's pool may).
test('no cut client leaves an exchange held open at the app', async () => {
  const held = () => openAppConnections.opaque!.size + openAppStreams.size;
  for (let i = 0; i < 50 && held() > 0; i++) await sleep(100);
  assert.equal(openAppConnections.opaque!.size, 0, 'opaque connections still open at the app');
  const paths = [...openAppStreams].map((stream) => stream.sentHeaders?.[':path'] ?? stream.id);
  assert.equal(openAppStreams.size, 0, `HTTP/2 streams still open at the app: ${paths}`);
});
