// Real app servers' streams behind a real sidecar pair (client → outbound → mTLS → inbound → app):
// Apache httpd with mod_http2 (`Protocols h2c http/1.1`) and Go's h2c (golang.org/x/net) as
// HTTP/2 apps, asked by curl and h2load with prior knowledge; WebSocket echo on uvicorn and
// aiohttp with Python's websockets client; server-sent events from aiohttp, uvicorn and Go
// (flushed one by one, 200 ms apart), which must reach the client one by one, not all at the
// end. Arrival times are notes, not pass/fail. A server or client not installed is skipped,
// naming its Debian package (.ci/run installs them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import {
  type AppPair,
  type AppServer,
  type AppServerKind,
  type AppServerSet,
  missing,
  PYTHON,
  startAppServerSet,
  works,
} from './app-servers-harness.ts';

const run = promisify(execFile);
const KINDS: AppServerKind[] = ['apache', 'go-h2c', 'go', 'uvicorn', 'aiohttp'];
const skipCurl = works('curl', ['--version']) ? false : 'needs curl (apt-get install curl)';
const skipH2load = works('h2load', ['--version']) ? false : 'needs h2load (apt-get install nghttp2-client)';
const skipWebsockets = works(PYTHON, ['-c', 'import websockets'])
  ? false
  : `needs ${PYTHON} with websockets (apt-get install python3-websockets)`;

let upload: string;
let pair: AppPair | undefined;
let servers: ReadonlyMap<AppServerKind, AppServer>;
let started: AppServerSet | undefined;

before(async () => {
  started = await startAppServerSet(KINDS, 'mutual-app-streams-');
  ({ upload, pair, servers } = started);
});

after(() => started?.stop());

/** The app's port and the client sidecar's upstream in front of it. */
function ports(kind: AppServerKind): { direct: number; via: number } {
  const direct = servers.get(kind)!.port;
  return { direct, via: pair!.via(direct) };
}

/** curl over HTTP/2 with prior knowledge: the status, the headers but date (sorted), the body. */
async function curlH2(port: number, path: string, args: string[] = []): Promise<string> {
  const { stdout } = await run(
    'curl',
    [
      ...['-s', '-i', '--http2-prior-knowledge', '-m', '10', '-H', 'Host: app.test', ...args],
      `http://127.0.0.1:${port}${path}`,
    ],
    { encoding: 'latin1', maxBuffer: 16 * 1024 * 1024 },
  );
  const headEnd = stdout.indexOf('\r\n\r\n');
  const [status, ...headers] = stdout.slice(0, headEnd).split('\r\n');
  const kept = headers.filter((line) => !/^date:/i.test(line)).sort();
  return [status, ...kept, '', stdout.slice(headEnd + 4)].join('\n');
}

test('Apache mod_http2 (h2c prior knowledge): the same answers through the pair as straight', {
  skip: skipCurl || missing('apache'),
}, async (t) => {
  const { direct, via } = ports('apache');
  const cases: [string, string, string[]][] = [
    ['GET', '/hello', []],
    ['HEAD', '/hello', ['-I']],
    ['POST 1 MB', '/echo', ['--data-binary', `@${upload}`]],
    ['204', '/empty', []],
    ['Set-Cookie x20', '/cookies', []],
    ['302', '/redirect', []],
  ];
  for (const [name, path, args] of cases)
    await t.test(name, async () => {
      // Apache sends a CGI's Content-Length over HTTP/2 only when the script was done before the
      // head went out: 4 of 20 direct uploads had it. Its absence is Apache's, not the sidecars'.
      const drop = (text: string) => (path === '/echo' ? text.replace(/^content-length: .*\n/im, '') : text);
      const straight = drop(await curlH2(direct, path, args));
      assert.match(straight, /^HTTP\/2 /);
      assert.equal(drop(await curlH2(via, path, args)), straight);
    });
  await t.test('304 for If-None-Match with its ETag', async () => {
    const etag = /^etag: (.*)$/im.exec(await curlH2(direct, '/etag'))?.[1];
    assert.ok(etag);
    const straight = await curlH2(direct, '/etag', ['-H', `If-None-Match: ${etag}`]);
    assert.match(straight, /^HTTP\/2 304/);
    assert.equal(await curlH2(via, '/etag', ['-H', `If-None-Match: ${etag}`]), straight);
  });
});

test('Apache mod_http2: 4,000 streams through the pair, 50 at once on each of 4 connections, all 2xx', {
  skip: skipH2load || missing('apache'),
}, async () => {
  const { stdout } = await run('h2load', [
    '-n',
    '4000',
    '-c',
    '4',
    '-m',
    '50',
    `http://127.0.0.1:${ports('apache').via}/hello`,
  ]);
  assert.match(stdout, /status codes: 4000 2xx, 0 3xx, 0 4xx, 0 5xx/);
});

test('Go h2c: HTTP/2 reaches the app through the pair, a 1 MB upload whole', {
  skip: skipCurl || missing('go-h2c'),
}, async () => {
  const { direct, via } = ports('go-h2c');
  const straight = await curlH2(direct, '/upload', ['--data-binary', `@${upload}`]);
  assert.match(straight, /HTTP\/2\.0 POST got=1000000 /);
  assert.equal(await curlH2(via, '/upload', ['--data-binary', `@${upload}`]), straight);
});

/** Reads `path` over HTTP/1.1 (or HTTP/2 with curl) and notes when each SSE event arrived. */
async function eventArrivals(port: number, path: string): Promise<number[]> {
  const socket = connect(port, '127.0.0.1');
  const start = performance.now();
  const arrivals: number[] = [];
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no 5 events in 10 s; got ${JSON.stringify(text)}`)),
      10_000,
    );
    socket.on('data', (chunk: Buffer) => {
      const before = text.split('data: event').length;
      text += chunk.toString('latin1');
      const events = text.split('data: event').length;
      for (let i = before; i < events; i++) arrivals.push(Math.round(performance.now() - start));
      if (events - 1 >= 5) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
  }).finally(() => socket.destroy());
  return arrivals;
}

for (const kind of ['aiohttp', 'uvicorn', 'go'] as const) {
  test(`${kind}: server-sent events flushed one by one reach the client one by one through the pair`, {
    skip: missing(kind),
  }, async (t) => {
    const { direct, via } = ports(kind);
    const straight = await eventArrivals(direct, '/events');
    const through = await eventArrivals(via, '/events');
    t.diagnostic(
      `${kind} events arrived at ms: direct ${straight.join(', ')}; through the pair ${through.join(', ')}`,
    );
    // 200 ms apart at the app: held back and sent together, they would arrive in one read.
    assert.equal(new Set(through).size >= 4, true, `events arrived together: ${through.join(', ')}`);
  });
}

const WEBSOCKET_ECHO = `
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], max_size=None) as socket:
        await socket.send('hello')
        text = await socket.recv()
        blob = bytes(range(256)) * 4096
        await socket.send(blob)
        echoed = await socket.recv()
        print(text, len(echoed), echoed == blob)
asyncio.run(main())
`;

for (const kind of ['uvicorn', 'aiohttp'] as const) {
  test(`${kind}: a WebSocket echo (text, then 1 MiB binary) through the pair with Python's websockets`, {
    skip: skipWebsockets || missing(kind),
  }, async () => {
    const { direct, via } = ports(kind);
    for (const port of [direct, via]) {
      const { stdout } = await run(PYTHON, ['-c', WEBSOCKET_ECHO, `ws://127.0.0.1:${port}/ws`], {
        timeout: 15_000,
      });
      assert.equal(
        stdout.trim(),
        'hello 1048576 True',
        `port ${port === via ? 'through the pair' : 'direct'}`,
      );
    }
  });
}
