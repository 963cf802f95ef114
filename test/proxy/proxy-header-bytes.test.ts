// Header values are opaque octets (RFC 9110 §5.5 obs-text; Envoy passes them as such): bytes
// 0x80-0xFF in a request or answer header, raw UTF-8 (`filename="été.txt"`) or latin1, reach the
// app and the client through a real sidecar pair exactly as they were sent, over HTTP/1 and HTTP/2,
// on all three ways in. A raw TCP app records the request bytes it gets and answers hand-made
// bytes; the client reads raw bytes (HTTP/1) or the latin1 strings node:http2 reads octets into.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as connectHttp2, createServer as createHttp2Server, type Http2Server } from 'node:http2';
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
import { connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  type ProxyProcess,
  readTlsCredentials,
  startProxyProcess,
} from '../../src/testing/mesh-pki.ts';

type Via = 'mtls' | 'plaintext' | 'outbound';
const VIAS: Via[] = ['mtls', 'plaintext', 'outbound'];

/** `attachment; filename="été.txt"` in raw UTF-8, then latin1 é and ÿ: none of it valid the other way. */
const VALUE = Buffer.concat([
  Buffer.from('attachment; filename="'),
  Buffer.from('été.txt', 'utf8'),
  Buffer.from('"; x='),
  Buffer.from([0xe9, 0xff, 0x80]),
]);

/** Reason phrases the raw app answers a path with: UTF-8, and bytes that are not UTF-8. */
const REASONS: Record<string, Buffer> = {
  '/utf8-reason': Buffer.from('Café été', 'utf8'),
  '/latin1-reason': Buffer.from([0x43, 0x61, 0x66, 0xe9]),
};

let dir: string;
let server: ProxyProcess;
let client: ProxyProcess;
const closers: (() => void)[] = [];
let credentials: { key: Buffer; cert: Buffer; ca: Buffer };
/** Every request head the raw apps got, byte for byte. */
const appHeads: Buffer[] = [];
/** The raw headers of each stream the HTTP/2 app got. */
const appStreams: string[][] = [];
/** Inbound listeners: [STRICT raw, PERMISSIVE raw, PERMISSIVE h2]; web's upstreams: [raw, h2]. */
const inbound = { raw: { mtls: 0, plaintext: 1 }, h2: { mtls: 2, plaintext: 2 } };
const upstream = { raw: 0, h2: 1 };

async function listen(app: Server | Http2Server): Promise<number> {
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  closers.push(() => app.close());
  return (app.address() as AddressInfo).port;
}

/** Records each request head and answers it with VALUE in `content-disposition` (a body by content-length is skipped). */
function rawApp(): Server {
  const sockets = new Set<Socket>();
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
  });
  return createTcpServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.subarray(0, end + 4);
        appHeads.push(Buffer.from(head));
        const length = Number(/content-length: *(\d+)/i.exec(head.toString('latin1'))?.[1] ?? 0);
        pending = pending.subarray(end + 4 + length);
        const path = head.toString('latin1').split(' ')[1];
        if (path === '/upgrade') {
          // Switched, then done: the spliced connection ends, and with it the client's.
          socket.end(
            Buffer.concat([
              Buffer.from(
                'HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n',
              ),
              Buffer.from('content-disposition: '),
              VALUE,
              Buffer.from('\r\n\r\n'),
            ]),
          );
          return;
        }
        const reason = REASONS[path ?? ''] ?? Buffer.from('OK');
        socket.write(
          Buffer.concat([
            Buffer.from('HTTP/1.1 200 '),
            reason,
            Buffer.from('\r\ncontent-disposition: '),
            VALUE,
            Buffer.from('\r\ncontent-length: 2\r\n\r\nok'),
          ]),
        );
      }
    });
    socket.on('error', () => {});
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-header-bytes-'));
  const strictRaw = await listen(rawApp());
  const permissiveRaw = await listen(rawApp());
  const h2App = createHttp2Server();
  h2App.on('stream', (stream, _headers, _flags, rawHeaders) => {
    appStreams.push([...rawHeaders]);
    stream.on('error', () => {});
    stream.resume();
    // node:http2 writes a string's code units as octets (and reads octets so): VALUE, byte for byte.
    stream.respond({ ':status': 200, 'content-disposition': VALUE.toString('latin1') });
    stream.end('ok');
  });
  h2App.on('session', (session) => closers.push(() => session.destroy()));
  const h2Port = await listen(h2App);

  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  const web = await pki.workload('web');
  credentials = await readTlsCredentials(web);
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${strictRaw}`, '--inbound', `127.0.0.1:0=${permissiveRaw}`],
    ...['--inbound', `127.0.0.1:0=${h2Port}`, '--mode', 'STRICT'],
    ...['--port-mode', `${permissiveRaw}=PERMISSIVE`, '--port-mode', `${h2Port}=PERMISSIVE`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  const to = (index: number) => `${emoji.spiffeId}@127.0.0.1:${server.inbound[index]!.port}`;
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${to(0)}`, '--upstream', `127.0.0.1:0=${to(2)}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  for (const close of closers) close();
  await rm(dir, { recursive: true, force: true });
});

function portOf(via: Via, target: 'raw' | 'h2'): number {
  if (via === 'outbound') return client.outbound[upstream[target]]!.port;
  return server.inbound[inbound[target][via]]!.port;
}

/** Writes `bytes` on a new connection and reads everything until the sidecar closes it (5 s at most). */
async function exchange(via: Via, bytes: Buffer): Promise<Buffer> {
  const socket: Socket = await new Promise((resolve, reject) => {
    const port = portOf(via, 'raw');
    if (via === 'mtls') {
      const tls = tlsConnect({
        host: '127.0.0.1',
        port,
        ...credentials,
        checkServerIdentity: () => undefined,
      });
      tls.once('secureConnect', () => resolve(tls)).once('error', reject);
    } else {
      const plain = connect(port, '127.0.0.1');
      plain.once('connect', () => resolve(plain)).once('error', reject);
    }
  });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close in 5 s; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
    }, 5000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.write(bytes);
  });
  return Buffer.concat(chunks);
}

/** The value of header `name` in a raw head, as the bytes on the wire. */
function headerBytes(head: Buffer, name: string): Buffer | undefined {
  const text = head.toString('latin1');
  const match = new RegExp(`\\r\\n${name}: *([^\\r]*)\\r\\n`, 'i').exec(text);
  return match ? Buffer.from(match[1]!, 'latin1') : undefined;
}

describe('HTTP/1: header bytes 0x80-0xFF pass through unchanged', () => {
  for (const via of VIAS) {
    test(`${via}: a request header reaches the app and an answer header the client, byte for byte`, async () => {
      appHeads.length = 0;
      const request = Buffer.concat([
        Buffer.from('GET /file HTTP/1.1\r\nHost: emoji\r\nx-name: '),
        VALUE,
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]);
      const answer = await exchange(via, request);
      assert.match(answer.toString('latin1'), /^HTTP\/1\.1 200 /, answer.toString('latin1'));
      assert.deepEqual(headerBytes(answer, 'content-disposition'), VALUE, answer.toString('latin1'));
      assert.equal(appHeads.length, 1);
      assert.deepEqual(headerBytes(appHeads[0]!, 'x-name'), VALUE, appHeads[0]!.toString('latin1'));
    });
  }
});

describe('HTTP/1 upgrades: header bytes 0x80-0xFF pass through unchanged', () => {
  const upgrade = (path: string) =>
    Buffer.concat([
      Buffer.from(
        `GET ${path} HTTP/1.1\r\nHost: emoji\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-name: `,
      ),
      VALUE,
      Buffer.from('\r\n\r\n'),
    ]);
  for (const via of VIAS) {
    test(`${via}: the upgrade request reaches the app and its 101 the client, byte for byte`, async () => {
      appHeads.length = 0;
      const answer = await exchange(via, upgrade('/upgrade'));
      assert.match(answer.toString('latin1'), /^HTTP\/1\.1 101 /, answer.toString('latin1'));
      assert.deepEqual(headerBytes(answer, 'content-disposition'), VALUE, answer.toString('latin1'));
      assert.deepEqual(headerBytes(appHeads.at(-1)!, 'x-name'), VALUE, appHeads.at(-1)!.toString('latin1'));
    });

    test(`${via}: an upgrade the app answers without switching gets its answer, byte for byte`, async () => {
      const answer = await exchange(via, upgrade('/no-switch'));
      assert.match(answer.toString('latin1'), /^HTTP\/1\.1 200 /, answer.toString('latin1'));
      assert.deepEqual(headerBytes(answer, 'content-disposition'), VALUE, answer.toString('latin1'));
    });
  }
});

describe('HTTP/1: a reason phrase with bytes 0x80-0xFF', () => {
  const statusLine = async (via: Via, path: string) => {
    const answer = await exchange(
      via,
      Buffer.from(`GET ${path} HTTP/1.1\r\nHost: emoji\r\nConnection: close\r\n\r\n`),
    );
    return answer.subarray(0, answer.indexOf('\r\n'));
  };
  for (const via of VIAS) {
    test(`${via}: in UTF-8 it reaches the client as the app sent it`, async () => {
      assert.deepEqual(
        await statusLine(via, '/utf8-reason'),
        Buffer.concat([Buffer.from('HTTP/1.1 200 '), REASONS['/utf8-reason']!]),
      );
    });

    test(`${via}: not in UTF-8 it is the status code's own phrase, not a 502`, async () => {
      // undici reads the reason as UTF-8 and keeps no bytes of it; Envoy writes its own phrase always.
      assert.equal((await statusLine(via, '/latin1-reason')).toString('latin1'), 'HTTP/1.1 200 OK');
    });
  }
});

describe('HTTP/2: header bytes 0x80-0xFF pass through unchanged', () => {
  for (const via of VIAS) {
    test(`${via}: a request header reaches the app and an answer header the client, byte for byte`, async () => {
      appStreams.length = 0;
      const port = portOf(via, 'h2');
      const session =
        via === 'mtls'
          ? connectHttp2(`https://127.0.0.1:${port}`, {
              ...credentials,
              checkServerIdentity: () => undefined,
            })
          : connectHttp2(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      try {
        const stream = session.request({ ':path': '/file', 'x-name': VALUE.toString('latin1') });
        const [headers] = (await Promise.all([
          new Promise((resolve, reject) => stream.once('response', resolve).once('error', reject)),
          new Promise((resolve) => stream.resume().once('end', resolve)),
        ])) as unknown as [Record<string, string>];
        assert.equal(headers[':status'], 200);
        assert.deepEqual(Buffer.from(headers['content-disposition']!, 'latin1'), VALUE);
        assert.equal(appStreams.length, 1);
        const raw = appStreams[0]!;
        const value = raw[raw.indexOf('x-name') + 1]!;
        assert.deepEqual(Buffer.from(value, 'latin1'), VALUE);
      } finally {
        session.destroy();
      }
    });
  }
});
