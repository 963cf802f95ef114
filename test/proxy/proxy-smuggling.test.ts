// Request smuggling and identity spoofing against a real sidecar pair: raw HTTP/1 and raw HTTP/2
// frames from a client, the outbound and a meshed peer, to apps that record the bytes they get.
// The app must only ever see the verified `x-mutual-client-id` (none in plaintext); every
// request must be one request to the client, the sidecars and the app alike, each authorized;
// and nothing one client's request does to a pooled connection may reach another client's
// answer. A raw app (a TCP tee in front of node:http, recording every byte it passes) shows what
// reached the app; a second raw app answers with hand-written (malformed) answers; an HTTP/2 app
// records each stream's raw headers and trailers.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const DENY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-denied, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/denied*"] } }]
`;

/** mTLS as web or admin to the STRICT inbound; plaintext to the PERMISSIVE one; through web's outbound. */
type Via = 'mtls' | 'plaintext' | 'outbound';
type Target = 'recorded' | 'raw' | 'h2';

let dir: string;
let server: ProxyProcess;
let client: ProxyProcess;
const webId = 'spiffe://cluster.local/ns/demo/sa/web';
const closers: (() => void)[] = [];
const credentials: Record<'web' | 'admin', { key: Buffer; cert: Buffer; ca: Buffer }> = {} as never;
/** Every byte the recorded app was sent, since the test cleared it. */
let recorded = '';
/** `METHOD url` of each request the recorded app's node:http parsed. */
const requests: string[] = [];
/** Raw headers and trailers of each stream the HTTP/2 app got. */
const streams: { headers: string[]; trailers: string[] }[] = [];
/** The raw app's answer to a request for a path (the default echoes the path). */
const rawAnswers: Record<string, string> = {};
/** Inbound listeners: [STRICT recorded, PERMISSIVE recorded, STRICT raw, PERMISSIVE h2]. */
const inbound = {
  recorded: { mtls: 0, plaintext: 1 },
  raw: { mtls: 2, plaintext: 2 },
  h2: { mtls: 3, plaintext: 3 },
};
/** web's upstreams: [recorded, raw, h2]. */
const upstream = { recorded: 0, raw: 1, h2: 2 };

async function listen<T extends Server | Http2Server | ReturnType<typeof createTcpServer>>(
  app: T,
): Promise<number> {
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  closers.push(() => app.close());
  return (app.address() as AddressInfo).port;
}

/** A TCP tee in front of `port`: records what it passes on, byte for byte. */
function recordingTee(port: number) {
  return createTcpServer((socket) => {
    const app = connect(port, '127.0.0.1');
    socket.on('data', (chunk: Buffer) => {
      recorded += chunk.toString('latin1');
      app.write(chunk);
    });
    app.pipe(socket);
    socket.on('end', () => app.end());
    socket.on('error', () => app.destroy());
    app.on('error', () => socket.destroy());
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-smuggling-'));
  const app = createServer((request: IncomingMessage, response) => {
    request.resume();
    request.on('end', () => {
      requests.push(`${request.method} ${request.url}`);
      response.end(`id=${request.headers['x-mutual-client-id'] ?? 'none'}`);
    });
  });
  app.on('upgrade', (request: IncomingMessage, socket: Socket) => {
    requests.push(`UPGRADE ${request.url}`);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
  });
  closers.push(() => app.closeAllConnections());
  const appPort = await listen(app);
  const strictTee = await listen(recordingTee(appPort));
  const permissiveTee = await listen(recordingTee(appPort));
  // Answers each request head (a body, given by content-length, is skipped) with rawAnswers[path].
  const rawApp = createTcpServer((socket) => {
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4 + Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0));
        const path = head.split(' ')[1]!;
        socket.write(rawAnswers[path] ?? `HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`);
      }
    });
    socket.on('error', () => {});
  });
  const rawPort = await listen(rawApp);
  const h2App = createHttp2Server();
  h2App.on('stream', (stream, _headers, _flags, rawHeaders) => {
    const seen = { headers: [...rawHeaders], trailers: [] as string[] };
    streams.push(seen);
    stream.on('trailers', (_trailers, _trailerFlags, rawTrailers: string[]) =>
      seen.trailers.push(...rawTrailers),
    );
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
  });
  const h2Port = await listen(h2App);

  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  const web = await pki.workload('web');
  const admin = await pki.workload('admin');
  for (const [name, files] of [
    ['web', web],
    ['admin', admin],
  ] as const) {
    const [key, cert, ca] = await Promise.all([
      readFile(files.keyFile),
      readFile(files.certFile),
      readFile(files.bundleFile),
    ]);
    credentials[name] = { key, cert, ca };
  }
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'deny.yaml'), DENY);
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${strictTee}`, '--inbound', `127.0.0.1:0=${permissiveTee}`],
    ...['--inbound', `127.0.0.1:0=${rawPort}`, '--inbound', `127.0.0.1:0=${h2Port}`],
    ...[
      '--mode',
      'STRICT',
      '--port-mode',
      `${permissiveTee}=PERMISSIVE`,
      '--port-mode',
      `${h2Port}=PERMISSIVE`,
    ],
    ...['--policy-dir', policyDir, '--label', 'app=emoji', '--admin-listen', '127.0.0.1:0'],
  ]);
  const to = (index: number) => `${emoji.spiffeId}@127.0.0.1:${server.inbound[index]!.port}`;
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${to(0)}`, '--upstream', `127.0.0.1:0=${to(2)}`],
    ...['--upstream', `127.0.0.1:0=${to(3)}`, '--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  for (const close of closers) close();
  await rm(dir, { recursive: true, force: true });
});

function open(via: Via, target: Target, as: 'web' | 'admin' = 'web'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (via === 'mtls') {
      const socket = tlsConnect({
        ...{ host: '127.0.0.1', port: server.inbound[inbound[target].mtls]!.port, ...credentials[as] },
        checkServerIdentity: () => undefined,
      });
      socket.once('secureConnect', () => resolve(socket)).once('error', reject);
      return;
    }
    const port =
      via === 'plaintext'
        ? server.inbound[inbound[target].plaintext]!.port
        : client.outbound[upstream[target]]!.port;
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket)).once('error', reject);
  });
}

/**
 * Writes `bytes` and reads until `isDone` holds for what came back or the sidecar closes; fails
 * after 5 s with what had come (a sidecar that never answers).
 */
async function exchange(
  via: Via,
  bytes: string | Buffer,
  options: { target?: Target; as?: 'web' | 'admin'; isDone?: (text: string) => boolean } = {},
): Promise<string> {
  const socket = await open(via, options.target ?? 'recorded', options.as);
  let text = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer in 5 s; got ${JSON.stringify(text)}`)),
        5000,
      );
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (options.isDone?.(text)) done();
      });
      socket.on('error', () => {});
      socket.once('close', done);
      socket.write(bytes);
    });
  } finally {
    socket.destroy();
  }
  return text;
}

/** How many whole answers (head and body, by content-length or chunks) `text` holds, 1xx not counted. */
function wholeAnswers(text: string): number {
  let count = 0;
  for (let rest = text; ; ) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) return count;
    const head = rest.slice(0, headEnd);
    rest = rest.slice(headEnd + 4);
    if (/^HTTP\/1\.1 1\d\d /.test(head)) continue;
    if (/^transfer-encoding: chunked/im.test(head)) {
      const end = rest.indexOf('\r\n0\r\n\r\n');
      if (end < 0 && !rest.startsWith('0\r\n\r\n')) return count;
      rest = rest.slice(end < 0 ? 5 : end + 7);
    } else {
      const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
      if (rest.length < length) return count;
      rest = rest.slice(length);
    }
    count++;
  }
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => match[1]);
/** Every `x-mutual-client-id` line (any spelling an app may read as it) in the bytes the app got. */
const identityLines = (bytes: string) =>
  [...bytes.matchAll(/^x[-_]mutual[-_]client[-_]id:.*$/gim)].map((m) => m[0]);

const VIAS: Via[] = ['mtls', 'plaintext', 'outbound'];
const HOST = 'Host: emoji\r\n';
const DENIED = `GET /denied HTTP/1.1\r\n${HOST}\r\n`;

describe('HTTP/1: the app sees only the verified identity', () => {
  const forged: Record<string, string> = {
    'lower case': `GET /a HTTP/1.1\r\n${HOST}x-mutual-client-id: evil\r\nConnection: close\r\n\r\n`,
    'upper case': `GET /a HTTP/1.1\r\n${HOST}X-MUTUAL-CLIENT-ID: evil\r\nConnection: close\r\n\r\n`,
    underscores: `GET /a HTTP/1.1\r\n${HOST}X_Mutual_Client_Id: evil\r\nConnection: close\r\n\r\n`,
    'mixed - and _': `GET /a HTTP/1.1\r\n${HOST}x-mutual_client-id: evil\r\nConnection: close\r\n\r\n`,
    twice: `GET /a HTTP/1.1\r\n${HOST}x-mutual-client-id: evil\r\nX-Mutual-Client-Id: evil\r\nConnection: close\r\n\r\n`,
    'blank around the value': `GET /a HTTP/1.1\r\n${HOST}x-mutual-client-id: \t evil \t\r\nConnection: close\r\n\r\n`,
    'in a chunked trailer': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nTrailer: x-mutual-client-id\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nx-mutual-client-id: evil\r\n\r\n`,
    'named hop-by-hop': `GET /a HTTP/1.1\r\n${HOST}Connection: x-mutual-client-id, close\r\n\r\n`,
    'named hop-by-hop and sent': `GET /a HTTP/1.1\r\n${HOST}Connection: close, X-Mutual-Client-Id\r\nx-mutual-client-id: evil\r\n\r\n`,
    'HTTP/1.0': `GET /a HTTP/1.0\r\nx-mutual-client-id: evil\r\n\r\n`,
    'on a WebSocket upgrade': `GET /a HTTP/1.1\r\n${HOST}Connection: Upgrade\r\nUpgrade: websocket\r\nx-mutual-client-id: evil\r\n\r\n`,
    'on an h2c upgrade': `GET /a HTTP/1.1\r\n${HOST}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nx-mutual-client-id: evil\r\nConnection: close\r\n\r\n`,
  };
  for (const via of VIAS) {
    test(`${via}: a forged x-mutual-client-id never reaches the app, in any spelling or place`, async () => {
      for (const [name, bytes] of Object.entries(forged)) {
        recorded = '';
        const answer = await exchange(via, bytes, { isDone: (text) => /\r\n\r\n/.test(text) });
        assert.match(statuses(answer)[0] ?? '', /^(200|101)$/, `${name}: ${answer}`);
        assert.deepEqual(
          identityLines(recorded),
          via === 'plaintext' ? [] : [`x-mutual-client-id: ${webId}`],
          `${name}: the app got ${JSON.stringify(recorded)}`,
        );
        assert.doesNotMatch(recorded, /evil/, name);
      }
    });
  }

  for (const via of VIAS) {
    test(`${via}: a header folded onto the line before (obs-fold) is refused`, async () => {
      recorded = '';
      for (const bytes of [
        `GET /a HTTP/1.1\r\n${HOST}X-Other: a\r\n x-mutual-client-id: evil\r\nConnection: close\r\n\r\n`,
        `GET /a HTTP/1.1\r\n${HOST}x-mutual-client-id: \r\n evil\r\nConnection: close\r\n\r\n`,
      ]) {
        assert.deepEqual(statuses(await exchange(via, bytes)), ['400']);
      }
      assert.equal(recorded, '');
    });
  }
});

describe('HTTP/1: one request is one request to the client, the sidecars and the app', () => {
  // Refused outright (RFC 9112 §6.1, §6.3; Envoy answers these 400 too): never forwarded.
  const refused: Record<string, string> = {
    'Content-Length and Transfer-Encoding': `POST /a HTTP/1.1\r\n${HOST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${DENIED}`,
    'Transfer-Encoding and Content-Length': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${DENIED}`,
    'two equal Content-Lengths': `POST /a HTTP/1.1\r\n${HOST}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello${DENIED}`,
    'two different Content-Lengths': `POST /a HTTP/1.1\r\n${HOST}Content-Length: 0\r\nContent-Length: ${DENIED.length}\r\n\r\n${DENIED}`,
    'a Content-Length list': `POST /a HTTP/1.1\r\n${HOST}Content-Length: 5, 5\r\n\r\nhello`,
    'Transfer-Encoding: chunked, identity': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${DENIED}`,
    'Transfer-Encoding: xchunked with Content-Length': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${DENIED}`,
    'Transfer-Encoding twice': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${DENIED}`,
    'a blank before the colon': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${DENIED}`,
    'bare LF line ends': `GET /a HTTP/1.1\n${HOST}\r\n${DENIED}`,
    'a CR inside a value': `GET /a HTTP/1.1\r\n${HOST}X-A: a\rb\r\n\r\n${DENIED}`,
    'a NUL inside a value': `GET /a HTTP/1.1\r\n${HOST}X-A: a\0b\r\n\r\n${DENIED}`,
    'a blank inside the target': `GET /a /denied HTTP/1.1\r\n${HOST}\r\n`,
    'an absolute target naming another host': `GET http://other/denied HTTP/1.1\r\n${HOST}\r\n`,
  };
  for (const via of VIAS) {
    test(`${via}: ambiguous framing is answered 400 and nothing reaches the app`, async () => {
      for (const [name, bytes] of Object.entries(refused)) {
        recorded = '';
        requests.length = 0;
        // The outbound passes the inbound's 400 on, keeping the app's connection: read it whole.
        const answer = await exchange(via, bytes, { isDone: (text) => wholeAnswers(text) === 1 });
        assert.deepEqual(statuses(answer), ['400'], `${name}: ${answer}`);
        assert.deepEqual(requests, [], name);
      }
    });
  }

  // Read one way only, and forwarded re-framed (undici sends its own chunked or Content-Length):
  // the request behind each is a request of its own, authorized as one.
  const framed: Record<string, [string, string[]]> = {
    'Transfer-Encoding with a tab': [
      `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n${DENIED}`,
      ['200', '403'],
    ],
    'Transfer-Encoding in upper case': [
      `POST /a HTTP/1.1\r\n${HOST}TRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n${DENIED}`,
      ['200', '403'],
    ],
    'a chunk extension': [
      `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n${DENIED}`,
      ['200', '403'],
    ],
    'a chunk size with leading zeros': [
      `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n0\r\n\r\n${DENIED}`,
      ['200', '403'],
    ],
    'an absolute target': [`GET http://emoji/a HTTP/1.1\r\n${HOST}\r\n${DENIED}`, ['200', '403']],
    'a GET whose body has no length': [`GET /a HTTP/1.1\r\n${HOST}\r\n${DENIED}`, ['200', '403']],
    'a denied request pipelined between allowed ones': [
      `GET /a HTTP/1.1\r\n${HOST}\r\n${DENIED}GET /b HTTP/1.1\r\n${HOST}\r\n`,
      ['200', '403', '200'],
    ],
    'a denied request inside a body': [
      `POST /a HTTP/1.1\r\n${HOST}Content-Length: ${DENIED.length}\r\n\r\n${DENIED}`,
      ['200'],
    ],
    'HTTP/1.0 keep-alive': [
      `GET /a HTTP/1.0\r\n${HOST}Connection: keep-alive\r\n\r\n${DENIED}`,
      ['200', '403'],
    ],
  };
  for (const via of VIAS) {
    test(`${via}: a request behind another is authorized on its own; a body stays a body`, async () => {
      for (const [name, [bytes, expected]] of Object.entries(framed)) {
        requests.length = 0;
        const answer = await exchange(via, bytes, {
          isDone: (text) => wholeAnswers(text) === expected.length,
        });
        assert.deepEqual(statuses(answer), expected, `${name}: ${answer}`);
        assert.ok(!requests.some((request) => request.includes('/denied')), `${name}: ${requests}`);
      }
    });
  }

  for (const via of VIAS) {
    // Before: the parse error came once the request had been forwarded, and its 400 waited for the
    // answer to that request, which never came: the client got nothing, for good, and the request
    // held a pooled connection to the next hop all that time.
    test(`${via}: a body that is not valid chunked framing gets 400 at once, and the app no request`, async () => {
      for (const [name, bytes] of Object.entries({
        'Transfer-Encoding: xchunked': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${DENIED}`,
        'a 0x chunk size': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n${DENIED}`,
        'a chunk size over 64 bits': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n`,
        'bare LF in the chunks': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n${DENIED}`,
        'a chunk longer than its size': `POST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n${DENIED}`,
      })) {
        requests.length = 0;
        const answer = await exchange(via, bytes);
        assert.deepEqual(statuses(answer), ['400'], `${name}: ${answer}`);
        assert.match(answer, /connection: close/i, name);
        assert.match(answer, /the request body is not valid HTTP\/1\.1/, name);
        assert.deepEqual(requests, [], name);
      }
    });
  }

  for (const via of VIAS) {
    test(`${via}: a malformed body behind a request still owed its answer: that answer first, then 400`, async () => {
      requests.length = 0;
      const answer = await exchange(
        via,
        `GET /first HTTP/1.1\r\n${HOST}\r\nPOST /a HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n`,
      );
      assert.deepEqual(statuses(answer), ['200', '400'], answer);
      assert.deepEqual(requests, ['GET /first']);
    });
  }

  test('outbound: Expect: 100-continue on a denied request gets the 403, and what follows is not read as a request', async () => {
    requests.length = 0;
    const answer = await exchange(
      'outbound',
      `POST /denied HTTP/1.1\r\n${HOST}Expect: 100-continue\r\nContent-Length: ${DENIED.length}\r\n\r\n${DENIED}`,
      { isDone: (text) => wholeAnswers(text) === 1 },
    );
    assert.deepEqual(statuses(answer).at(-1), '403', answer);
    assert.deepEqual(requests, []);
  });
});

describe("HTTP/1: one client's answer never reaches another over the pooled connections", () => {
  const poison = 'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON';
  const malformed: Record<string, string> = {
    'Content-Length and Transfer-Encoding': `HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nAAAAA\r\n0\r\n\r\n${poison}`,
    'two Content-Lengths': `HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: ${3 + poison.length}\r\n\r\nabc${poison}`,
    'a 204 with a body': `HTTP/1.1 204 No Content\r\nContent-Length: ${poison.length}\r\n\r\n${poison}`,
    'a 204 with chunks': `HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n${poison}`,
    'a 304 with a body': `HTTP/1.1 304 Not Modified\r\nContent-Length: ${poison.length}\r\n\r\n${poison}`,
    'HEAD answered with a body': `HTTP/1.1 200 OK\r\nContent-Length: ${poison.length}\r\n\r\n${poison}`,
    'bytes after the answer': `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok${poison}`,
    'a 101 to a plain request': `HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n${poison}`,
    'Transfer-Encoding: xchunked': `HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\nContent-Length: 2\r\n\r\nok${poison}`,
    'a blank before the colon': `HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok${poison}`,
    // Before: node:http refused to write this reason phrase; the 502 for it then threw too, inside
    // undici, and the client waited forever on a pooled connection between the sidecars.
    'a control character in the reason phrase': `HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok${poison}`,
  };
  for (const [from, to] of [
    ['outbound', 'outbound'],
    ['mtls', 'mtls'],
  ] as const) {
    test(`${from}: an app's malformed answers to web end there; the next client (${to === 'mtls' ? 'admin' : 'web again'}) gets its own`, async () => {
      for (const [name, answer] of Object.entries(malformed)) {
        const path = `/malformed-${name.replaceAll(' ', '-')}`;
        rawAnswers[path] = answer;
        const method = name.startsWith('HEAD') ? 'HEAD' : 'GET';
        // Keep-alive: the client reads its answer and lets the pooled connections be reused.
        const first = await exchange(from, `${method} ${path} HTTP/1.1\r\n${HOST}\r\n`, {
          target: 'raw',
          isDone: (text) =>
            /\r\n\r\n/.test(text) &&
            (/^HTTP\/1\.1 (204|304)/.test(text) || method === 'HEAD' || /(ok|\n)$/.test(text)),
        });
        assert.match(first, /^HTTP\/1\.1 \d{3} /, `${name}: ${first}`);
        assert.doesNotMatch(first, /POISON/, name);
        for (let i = 0; i < 3; i++) {
          const next = await exchange(to, `GET /victim-${i} HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`, {
            target: 'raw',
            as: 'admin',
          });
          assert.match(
            next,
            new RegExp(`^HTTP/1\\.1 200 OK\\r\\n[\\s\\S]*\\r\\n\\r\\n/victim-${i}$`),
            `${name}: ${next}`,
          );
        }
      }
    });
  }
});

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
function frame(type: number, flags: number, streamId: number, payload: Buffer | string = ''): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(9);
  head.writeUIntBE(body.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, body]);
}
/** One HPACK field: a literal not added to the table (0x00), or never indexed (0x10); no Huffman. */
function field(name: string, value: string, neverIndexed = false): Buffer {
  const [n, v] = [Buffer.from(name, 'latin1'), Buffer.from(value, 'latin1')];
  return Buffer.concat([Buffer.from([neverIndexed ? 0x10 : 0x00, n.length]), n, Buffer.from([v.length]), v]);
}
const request = (method: string) => [
  field(':method', method),
  field(':scheme', 'http'),
  field(':path', '/a'),
  field(':authority', 'emoji'),
];
const [END_STREAM, END_HEADERS] = [0x1, 0x4];
const HEADERS = (flags: number, ...fields: Buffer[]) => frame(0x1, flags, 1, Buffer.concat(fields));

/**
 * Writes the preface, SETTINGS and `frames` in one go; resolves with the types of the frames that
 * came back once stream 1 has ended (END_STREAM), been reset, or the connection has gone (3 s at most).
 */
async function h2Exchange(via: Via, frames: Buffer[]): Promise<{ types: number[] }> {
  const socket = await open(via, 'h2');
  const types: number[] = [];
  let pending = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const [type, flags, stream] = [pending[3]!, pending[4]!, pending.readUInt32BE(5)];
        types.push(type);
        pending = pending.subarray(9 + pending.readUIntBE(0, 3));
        if (type === GOAWAY || (stream === 1 && (type === RST_STREAM || (flags & END_STREAM) !== 0))) done();
      }
    });
    socket.on('error', () => {});
    socket.once('close', done);
    socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0), ...frames]));
  });
  socket.destroy();
  return { types };
}
const [DATA_FRAME, HEADERS_FRAME, RST_STREAM, GOAWAY] = [0x0, 0x1, 0x3, 0x7];

describe('HTTP/2: forged identities and malformed streams', () => {
  const forged: Record<string, Buffer[]> = {
    'a literal field': [
      HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('x-mutual-client-id', 'evil')),
    ],
    'a never-indexed field': [
      HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('x-mutual-client-id', 'evil', true)),
    ],
    underscores: [HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('x_mutual_client_id', 'evil'))],
    'a CONTINUATION frame': [
      HEADERS(END_STREAM, ...request('GET')),
      frame(0x9, END_HEADERS, 1, field('x-mutual-client-id', 'evil')),
    ],
    'a trailer HEADERS frame': [
      HEADERS(END_HEADERS, ...request('POST')),
      frame(0x0, 0, 1, 'abc'),
      HEADERS(END_STREAM | END_HEADERS, field('x-mutual-client-id', 'evil')),
    ],
    'a value with CR LF': [
      HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('x-a', 'a\r\nx-mutual-client-id: evil')),
    ],
  };
  for (const via of VIAS) {
    test(`${via}: a forged x-mutual-client-id never reaches the app, in any HPACK form or frame`, async () => {
      for (const [name, frames] of Object.entries(forged)) {
        streams.length = 0;
        const { types } = await h2Exchange(via, frames);
        assert.ok(types.includes(DATA_FRAME), `${name}: answered (frames ${types})`);
        assert.equal(streams.length, 1, name);
        const { headers, trailers } = streams[0]!;
        const ids = headers.filter((_, i) => i % 2 === 1 && /^x.mutual.client.id$/i.test(headers[i - 1]!));
        assert.deepEqual(ids, via === 'plaintext' ? [] : [webId], `${name}: ${headers}`);
        assert.doesNotMatch([...headers, ...trailers].join('\n'), /evil/, name);
      }
    });
  }

  const refused: Record<string, Buffer[]> = {
    'transfer-encoding': [
      HEADERS(END_HEADERS, ...request('POST'), field('transfer-encoding', 'chunked')),
      frame(0x0, END_STREAM, 1, '0\r\n\r\n'),
    ],
    'connection naming the identity': [
      HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('connection', 'x-mutual-client-id')),
    ],
    'te other than trailers': [HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('te', 'gzip'))],
    'an upper-case name': [
      HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('X-Mutual-Client-Id', 'evil')),
    ],
    'CR LF in :path': [
      HEADERS(
        END_STREAM | END_HEADERS,
        field(':method', 'GET'),
        field(':scheme', 'http'),
        field(':path', '/a HTTP/1.1\r\nx: y'),
        field(':authority', 'emoji'),
      ),
    ],
    // RFC 9113 §8.3.1: the host travels in :authority, never in :path (Envoy: 400).
    'a URL as :path': [
      HEADERS(
        END_STREAM | END_HEADERS,
        field(':method', 'GET'),
        field(':scheme', 'http'),
        field(':path', 'http://admin.internal/a'),
        field(':authority', 'emoji'),
      ),
    ],
    // Before: nghttp2 reset these in the read that brought them; the stream was handed over
    // closed, emitted 'error' with nobody listening, and the sidecar process died.
    'content-length over the DATA': [
      HEADERS(END_HEADERS, ...request('POST'), field('content-length', '10')),
      frame(0x0, END_STREAM, 1, 'abc'),
    ],
    'content-length under the DATA': [
      HEADERS(END_HEADERS, ...request('POST'), field('content-length', '1')),
      frame(0x0, END_STREAM, 1, 'abc'),
    ],
  };
  for (const via of VIAS) {
    test(`${via}: a malformed stream is reset, never reaches the app, and the sidecar serves on`, async () => {
      for (const [name, frames] of Object.entries(refused)) {
        streams.length = 0;
        const { types } = await h2Exchange(via, frames);
        assert.ok(types.includes(RST_STREAM) || types.includes(GOAWAY), `${name}: reset (frames ${types})`);
        assert.ok(!types.includes(DATA_FRAME), `${name}: not answered`);
        assert.equal(streams.length, 0, name);
        assert.equal(server.child.exitCode, null, `${name}: the server sidecar lives\n${server.output()}`);
        assert.equal(client.child.exitCode, null, `${name}: the client sidecar lives\n${client.output()}`);
        const after = await h2Exchange(via, [HEADERS(END_STREAM | END_HEADERS, ...request('GET'))]);
        assert.ok(after.types.includes(DATA_FRAME), `${name}: the next connection is served`);
      }
    });

    test(`${via}: :authority and Host that disagree get 400; CONNECT gets 501; neither reaches the app`, async () => {
      streams.length = 0;
      for (const frames of [
        [HEADERS(END_STREAM | END_HEADERS, ...request('GET'), field('host', 'other'))],
        [HEADERS(END_HEADERS, field(':method', 'CONNECT'), field(':authority', 'emoji:80'))],
      ]) {
        const { types } = await h2Exchange(via, frames);
        assert.ok(types.includes(HEADERS_FRAME), `answered (frames ${types})`);
      }
      assert.equal(streams.length, 0);
    });
  }
});
