// HTTP/2 and gRPC through real proxies: an h2 app behind a STRICT server proxy, reached through a
// client proxy's explicit upstream (both proxies handle each stream).
// Every stream is authorized by path, carries the verified client identity, keeps its trailers and
// is counted; resets cross in both directions; a client speaking garbage is refused alone.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  type ClientHttp2Session,
  connect,
  constants,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { type AddressInfo, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

/** STRICT everywhere but `permissivePort`, where plaintext from outside the mesh is let in. */
const strictBut = (permissivePort: number) => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: emoji, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  mtls: { mode: STRICT }
  portLevelMtls: { ${permissivePort}: { mode: PERMISSIVE } }
`;
const ALLOW_LIST_ONLY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: emoji-grpc, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: ALLOW
  rules:
    - to: [{ operation: { methods: ["POST"], paths: ["/demo.Emoji/List"] } }]
`;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

const curlHasHttp2 = (() => {
  try {
    return / HTTP2( |$)/m.test(execFileSync('curl', ['--version'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
})();

/** A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, the bytes. */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

interface Answer {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders;
  rstCode: number;
}

/** One request on `session`; resolves when the stream closes, whatever happened to it. */
function request(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: Buffer | Readable,
  trailers?: OutgoingHttpHeaders,
): Promise<Answer> {
  return new Promise((resolve) => {
    const stream = session.request(headers, {
      endStream: body === undefined,
      waitForTrailers: trailers !== undefined,
    });
    const answer: Answer = { headers: {}, body: Buffer.alloc(0), trailers: {}, rstCode: 0 };
    const chunks: Buffer[] = [];
    stream.on('response', (received) => {
      answer.headers = received;
    });
    stream.on('trailers', (received) => {
      answer.trailers = received;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('wantTrailers', () => stream.sendTrailers(trailers!));
    stream.on('error', () => {});
    stream.on('close', () => {
      answer.body = Buffer.concat(chunks);
      answer.rstCode = stream.rstCode;
      resolve(answer);
    });
    // The server closed the stream with its answer before the upload ended (RST_STREAM
    // NO_ERROR): node's client would wait forever for writes that cannot leave; stop them.
    stream.once('aborted', () => {
      if (body instanceof Readable) body.unpipe(stream).destroy();
      if (stream.readableEnded) stream.destroy();
      else stream.once('end', () => stream.destroy());
    });
    if (body instanceof Readable) body.pipe(stream);
    else if (body !== undefined) stream.end(body);
  });
}

/** `mebibytes` MiB of upload, read as the stream can take it (one big write would overrun node's session memory). */
function upload(mebibytes: number): Readable {
  const chunk = Buffer.alloc(1 << 20, 'u');
  return Readable.from(
    (function* () {
      for (let i = 0; i < mebibytes; i++) yield chunk;
    })(),
  );
}

interface Frame {
  type: number;
  streamId: number;
  payload: Buffer;
}

function parseFrames(data: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at + 9 <= data.length; ) {
    const length = data.readUIntBE(at, 3);
    if (at + 9 + length > data.length) break;
    const streamId = data.readUInt32BE(at + 5) & 0x7fffffff;
    frames.push({ type: data[at + 3]!, streamId, payload: data.subarray(at + 9, at + 9 + length) });
    at += 9 + length;
  }
  return frames;
}

/** Sends raw bytes and collects the HTTP/2 frames that come back until the peer closes or `isEnough` holds. */
function rawFrames(port: number, payload: Buffer, isEnough = (_frames: Frame[]) => false): Promise<Frame[]> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (isEnough(parseFrames(data))) socket.destroy();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(parseFrames(data)));
    socket.write(payload);
  });
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/**
 * A request as raw frames, headers as HPACK literals (no Huffman, no indexing), split into
 * HEADERS + CONTINUATION frames of 16 KiB: a client that does not hold back headers the server's
 * SETTINGS forbid (node's own client refuses to send them).
 */
function rawRequest(streamId: number, headers: [string, string][]): Buffer {
  const int7 = (value: number) => {
    if (value < 127) return [value];
    const bytes = [127];
    for (value -= 127; value >= 128; value >>= 7) bytes.push((value & 0x7f) | 0x80);
    return [...bytes, value];
  };
  const block = Buffer.concat(
    headers.map(([name, value]) =>
      Buffer.concat([
        Buffer.from([0, ...int7(name.length)]),
        Buffer.from(name),
        Buffer.from(int7(value.length)),
        Buffer.from(value),
      ]),
    ),
  );
  const frames: Buffer[] = [];
  for (let at = 0; at < block.length; at += 16_384) {
    const isLast = at + 16_384 >= block.length;
    const endHeaders = isLast ? 0x4 : 0;
    const chunk = block.subarray(at, at + 16_384);
    frames.push(
      at === 0 ? frame(0x1, 0x1 | endHeaders, streamId, chunk) : frame(0x9, endHeaders, streamId, chunk),
    );
  }
  return Buffer.concat(frames);
}

describe('HTTP/2 and gRPC through real proxies', () => {
  let dir: string;
  let policyDir: string;
  let app: Http2Server;
  let plainApp: Http2Server;
  let http1App: HttpServer;
  const proxies: ProxyProcess[] = [];
  let server: ProxyProcess;
  let webId: string;
  let url: string;
  let http1Url: string;
  const sessions: ClientHttp2Session[] = [];
  let appCancelled: (seen: { code: number; endedCleanly: boolean }) => void = () => {};

  const open = () => {
    const session = connect(url);
    session.on('error', () => {});
    sessions.push(session);
    return session;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-http2-'));
    policyDir = join(dir, 'policies');
    await mkdir(policyDir);
    const pki = await createTestPki(join(dir, 'pki'));
    const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
    webId = web!.spiffeId;

    const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const path = headers[':path'] ?? '';
      stream.on('error', () => {});
      if (path === '/hang') {
        // A reset must not arrive as a clean end of the request body first.
        let endedCleanly = false;
        stream.once('end', () => {
          endedCleanly = stream.rstCode === constants.NGHTTP2_NO_ERROR;
        });
        stream.once('close', () => appCancelled({ code: stream.rstCode, endedCleanly }));
        stream.resume();
        stream.respond({ ':status': 200 });
        stream.write('started');
        return;
      }
      if (path === '/reset') {
        // waitForTrailers: otherwise node ends the stream cleanly before its RST_STREAM.
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.write('partial', () => stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM));
        return;
      }
      if (path === '/early') {
        // Answers at once and never reads the upload.
        stream.respond({ ':status': 200 });
        stream.end('answered early');
        return;
      }
      if (path === '/vanish-stream' || path === '/vanish-session') {
        // Reads the whole upload, then resets the stream or drops the connection without an answer.
        stream.resume();
        stream.once('end', () =>
          path === '/vanish-stream' ? stream.close(constants.NGHTTP2_NO_ERROR) : stream.session?.destroy(),
        );
        return;
      }
      const chunks: Buffer[] = [];
      let requestTrailers: IncomingHttpHeaders = {};
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('trailers', (received) => {
        requestTrailers = received;
      });
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        const client = String(headers['x-mutual-client-id'] ?? '');
        if (path.startsWith('/demo.Emoji/')) {
          const message = body.subarray(5, 5 + body.readUInt32BE(1)).toString();
          stream.respond(
            { ':status': 200, 'content-type': 'application/grpc', 'x-client-id': client },
            { waitForTrailers: true },
          );
          stream.on('wantTrailers', () =>
            stream.sendTrailers({
              'grpc-status': '0',
              'x-request-trailer-seen': String(requestTrailers['x-request-trailer'] ?? ''),
            }),
          );
          stream.end(grpcFrame(Buffer.from(`${path} got ${message}`)));
        } else if (path === '/echo') {
          stream.respond({ ':status': 200 });
          stream.end(body);
        } else {
          stream.respond({ ':status': 200, 'content-type': 'text/plain' });
          stream.end(`client=${client} path=${path}`);
        }
      });
    };
    app = createServer().on('stream', onStream);
    plainApp = createServer().on('stream', onStream);
    for (const h2 of [app, plainApp])
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const plainAppPort = (plainApp.address() as AddressInfo).port;
    await writeFile(join(policyDir, 'peer-authentication.yaml'), strictBut(plainAppPort));
    http1App = createHttpServer((_request, response) => response.end('HTTP/1 only'));
    await new Promise<void>((resolve) => http1App.listen(0, '127.0.0.1', resolve));

    server = await startProxyProcess([
      ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
      ...['--inbound', `127.0.0.1:0=${(http1App.address() as AddressInfo).port}`],
      ...['--inbound', `127.0.0.1:0=${plainAppPort}`],
      ...['--policy-dir', policyDir, '--label', 'app=emoji', '--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(server);
    const client = await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[1]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(client);
    url = `http://127.0.0.1:${client.outbound[0]!.port}`;
    http1Url = `http://127.0.0.1:${client.outbound[1]!.port}`;
    for (const proxy of proxies) await proxy.untilReady();
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    app?.close();
    plainApp?.close();
    http1App?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('an h2 request reaches the app with the verified client identity; a forged one is stripped', async () => {
    const answer = await request(open(), {
      ':path': '/hello?x=1',
      'x-mutual-client-id': 'spiffe://cluster.local/ns/demo/sa/admin',
    });
    assert.equal(answer.headers[':status'], 200);
    assert.equal(answer.body.toString(), `client=${webId} path=/hello?x=1`);
  });

  test('plaintext h2 where PERMISSIVE allows it: no identity, the forged one still stripped; STRICT refuses it', async () => {
    const forged = { 'x-mutual-client-id': 'spiffe://cluster.local/ns/demo/sa/admin' };
    const plain = connect(`http://127.0.0.1:${server.inbound[2]!.port}`);
    plain.on('error', () => {});
    sessions.push(plain);
    const answer = await request(plain, { ':path': '/plain', ...forged });
    assert.equal(answer.body.toString(), 'client= path=/plain');
    const strict = connect(`http://127.0.0.1:${server.inbound[0]!.port}`);
    strict.on('error', () => {});
    sessions.push(strict);
    const refused = await request(strict, { ':path': '/plain', ...forged });
    assert.equal(refused.headers[':status'], undefined);
    const text = await server.metrics();
    assert.equal(
      metricValue(text, 'mutual_inbound_http_requests_total', {
        no_tls_reason: 'loopback',
        status_code: '200',
      }),
      1,
    );
    assert.ok(metricValue(text, 'mutual_inbound_refused_total', { reason: 'plaintext_strict' }) >= 1);
  });

  test('a gRPC unary call keeps its trailers both ways', async () => {
    const answer = await request(
      open(),
      {
        ':method': 'POST',
        ':path': '/demo.Emoji/List',
        'content-type': 'application/grpc',
        te: 'trailers',
        'x-mutual-client-id': 'spiffe://cluster.local/ns/demo/sa/admin',
      },
      grpcFrame(Buffer.from('all')),
      { 'x-request-trailer': 'from-client' },
    );
    assert.equal(answer.headers[':status'], 200);
    assert.equal(answer.headers['content-type'], 'application/grpc');
    assert.equal(answer.headers['x-client-id'], webId);
    assert.deepEqual(answer.body, grpcFrame(Buffer.from('/demo.Emoji/List got all')));
    assert.equal(answer.trailers['grpc-status'], '0');
    assert.equal(answer.trailers['x-request-trailer-seen'], 'from-client');
  });

  test('200 concurrent streams on one connection and a 4 MiB body all complete intact', async () => {
    const session = open();
    const bodies = Array.from({ length: 200 }, (_, i) => Buffer.from(`stream ${i} `.repeat(50)));
    const large = Buffer.alloc(4 * 1024 * 1024, 'abcdefgh');
    const answers = await Promise.all([
      ...bodies.map((body) => request(session, { ':method': 'POST', ':path': '/echo' }, body)),
      request(session, { ':method': 'POST', ':path': '/echo' }, large),
    ]);
    for (const [i, body] of [...bodies, large].entries()) {
      assert.equal(answers[i]!.headers[':status'], 200, `stream ${i}`);
      assert.ok(answers[i]!.body.equals(body), `stream ${i} body intact`);
    }
  });

  test('a client cancel reaches the app; an app reset reaches the client with its code', async () => {
    const session = open();
    const cancelled = new Promise<{ code: number; endedCleanly: boolean }>((resolve) => {
      appCancelled = resolve;
    });
    // waitForTrailers: otherwise node ends the request body cleanly before its RST_STREAM.
    const stream = session.request({ ':method': 'POST', ':path': '/hang' }, { waitForTrailers: true });
    stream.on('error', () => {});
    stream.write('the start of an upload');
    await new Promise((resolve) => stream.once('data', resolve));
    stream.close(constants.NGHTTP2_CANCEL);
    assert.deepEqual(await cancelled, { code: constants.NGHTTP2_CANCEL, endedCleanly: false });

    const reset = await request(session, { ':path': '/reset' });
    assert.equal(reset.headers[':status'], 200);
    assert.equal(reset.body.toString(), 'partial');
    assert.equal(reset.rstCode, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  test('an h2 app that answers a 64 MiB upload before reading it: the client gets that answer, the connection the next stream', {
    timeout: 10_000,
  }, async () => {
    const session = open();
    const early = await request(session, { ':method': 'POST', ':path': '/early' }, upload(64));
    assert.equal(early.headers[':status'], 200);
    assert.equal(early.body.toString(), 'answered early');
    const next = await request(session, { ':path': '/after-early' });
    assert.equal(next.body.toString(), `client=${webId} path=/after-early`);
  });

  test('an h2 app that reads an upload and resets the stream or drops the connection unanswered: 502, and the connection lives on', {
    timeout: 10_000,
  }, async () => {
    const session = open();
    for (const path of ['/vanish-stream', '/vanish-session']) {
      const answer = await request(session, { ':method': 'POST', ':path': path }, Buffer.alloc(1 << 20, 'v'));
      assert.equal(answer.headers[':status'], 502, path);
      assert.equal(answer.headers['x-mutual-proxy-error'], 'app_unavailable', path);
      const next = await request(session, { ':path': `/after${path}` });
      assert.equal(next.body.toString(), `client=${webId} path=/after${path}`);
    }
  });

  test('curl --http2-prior-knowledge gets its answer through both proxies', {
    skip: curlHasHttp2 ? false : 'curl with HTTP/2 support is not installed',
  }, async () => {
    const { stdout } = await promisify(execFile)('curl', [
      ...['-sS', '--http2-prior-knowledge', '-o', '-', '-w', '\n%{http_version} %{http_code}'],
      ...['-H', 'x-mutual-client-id: spiffe://cluster.local/ns/demo/sa/admin', `${url}/curl`],
    ]);
    assert.equal(stdout, `client=${webId} path=/curl\n2 200`);
  });

  test('garbage after the preface gets a GOAWAY; other clients keep being served', async () => {
    const garbage = Buffer.from([0, 0, 4, 0x0, 0, 0, 0, 0, 0, 1, 2, 3, 4]); // DATA on stream 0
    const frames = await rawFrames(proxies[1]!.outbound[0]!.port, Buffer.concat([PREFACE, garbage]));
    const goaway = frames.find((f) => f.type === 0x7);
    assert.ok(goaway, `a GOAWAY among the frames: ${frames.map((f) => f.type).join(',')}`);
    assert.equal(goaway.payload.readUInt32BE(4), constants.NGHTTP2_PROTOCOL_ERROR);
    const answer = await request(open(), { ':path': '/after-garbage' });
    assert.equal(answer.body.toString(), `client=${webId} path=/after-garbage`);
  });

  test('a header list over 64 KiB resets that stream only; the connection serves the next one', async () => {
    const base: [string, string][] = [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':authority', 'emoji'],
    ];
    const big = 'x'.repeat(40 * 1024);
    const bytes = Buffer.concat([
      PREFACE,
      frame(0x4, 0, 0, Buffer.alloc(0)), // SETTINGS
      rawRequest(1, [...base, [':path', '/huge'], ['x-big-1', big], ['x-big-2', big]]),
      rawRequest(3, [...base, [':path', '/after-huge']]),
    ]);
    // Until both have an answer: the reset of stream 1 may come after stream 3's data.
    const frames = await rawFrames(
      proxies[1]!.outbound[0]!.port,
      bytes,
      (received) =>
        received.some((f) => f.streamId === 3 && f.type === 0x0) && received.some((f) => f.streamId === 1),
    );
    const reset = frames.find((f) => f.streamId === 1);
    assert.equal(reset?.type, 0x3, 'stream 1 is reset');
    assert.equal(reset.payload.readUInt32BE(0), constants.NGHTTP2_REFUSED_STREAM);
    assert.ok(
      frames.some((f) => f.streamId === 3 && f.type === 0x1),
      'stream 3 is answered',
    );
  });

  test('an app that does not speak HTTP/2 gets 502 and one log line', async () => {
    const session = connect(http1Url);
    session.on('error', () => {});
    sessions.push(session);
    for (let i = 0; i < 2; i++) {
      const answer = await request(session, { ':path': '/' });
      assert.equal(answer.headers[':status'], 502);
      assert.match(answer.body.toString(), /did not answer over HTTP\/2/);
      assert.equal(answer.headers['x-mutual-proxy-error'], 'app_unavailable');
    }
    await waitUntil(async () => /the app does not answer HTTP\/2/.test(server.output()), 'the log line');
    assert.equal(server.output().match(/the app does not answer HTTP\/2/g)?.length, 1);
  });

  test('a policy allowing only /demo.Emoji/List: Vote gets 403 and grpc-status 7 naming it, List passes', async () => {
    await writeFile(join(policyDir, 'emoji.yaml'), ALLOW_LIST_ONLY);
    const session = open();
    const call = (method: string) =>
      request(
        session,
        {
          ':method': 'POST',
          ':path': `/demo.Emoji/${method}`,
          'content-type': 'application/grpc',
          te: 'trailers',
        },
        grpcFrame(Buffer.from('x')),
      );
    await waitUntil(
      async () => Number((await call('Vote')).headers[':status']) === 403,
      'the policy to apply',
    );
    const vote = await call('Vote');
    assert.equal(vote.headers['grpc-status'], '7');
    assert.equal(vote.headers['grpc-message'], 'RBAC: access denied');
    assert.equal(vote.headers['x-mutual-denied-by'], 'demo/emoji-grpc');
    assert.equal(vote.body.length, 0);
    const list = await call('List');
    assert.equal(list.headers[':status'], 200);
    assert.equal(list.trailers['grpc-status'], '0');
    const plain = await request(session, { ':path': '/hello' });
    assert.equal(plain.headers[':status'], 403);
    assert.equal(plain.body.toString(), 'RBAC: access denied');
    assert.equal(plain.headers['x-mutual-denied-by'], 'demo/emoji-grpc');
  });

  test('metrics count the HTTP/2 requests by status and client', async () => {
    const text = await server.metrics();
    const count = (labels: Record<string, string>) =>
      metricValue(text, 'mutual_inbound_http_requests_total', { client_id: webId, ...labels });
    assert.ok(count({ method: 'POST', status_code: '200' }) >= 202, text);
    assert.ok(count({ method: 'POST', status_code: '403' }) >= 2);
    assert.ok(count({ method: 'GET', status_code: '403' }) >= 1);
    assert.ok(count({ method: 'GET', status_code: '502' }) >= 2);
    assert.ok(
      metricValue(text, 'mutual_inbound_http_request_duration_seconds_count', { status_code: '200' }) >= 202,
    );
    assert.ok(metricValue(text, 'mutual_authorization_decisions_total', { policy: 'demo/emoji-grpc' }) >= 3);
  });
});
