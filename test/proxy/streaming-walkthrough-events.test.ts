// Streamed answers through a sidecar pair reach the client event by event, over HTTP/1 and HTTP/2
// between the apps: the app sends each Server-Sent Event only once curl has printed the one
// before, so an answer held anywhere on the way (until a size threshold or its end) never
// completes. Over HTTP/2, a `103 Early Hints` from the app goes ahead of the answer, as Envoy
// passes 1xx; before, the relay dropped it. curl -N is the client.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttp1Server, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const EVENTS = 5;
let dir: string;
let http1App: Server;
let http2App: Http2Server;
const proxies: ProxyProcess[] = [];
/** The outbound port that leads to each app through the pair. */
const outboundPort = { http1: 0, http2: 0 };
/** Lets the app send event `n` (set by the app, called by the test once curl printed event n-1). */
const waiting = new Map<number, () => void>();

/** Writes EVENTS events with `write`, each only once the test lets it go; then `end`. */
async function sendEvents(write: (text: string) => void, end: () => void) {
  for (let n = 0; n < EVENTS; n++) {
    if (n > 0) await new Promise<void>((resolve) => waiting.set(n, resolve));
    write(`data: event ${n}\n\n`);
  }
  end();
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-streaming-events-'));
  http1App = createHttp1Server((request, response) => {
    request.resume();
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    void sendEvents(
      (text) => response.write(text),
      () => response.end(),
    );
  });
  http2App = createHttp2Server();
  http2App.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/hints') {
      stream.additionalHeaders({ ':status': 103, link: '</style.css>; rel=preload' });
      return void setTimeout(() => {
        stream.respond({ ':status': 200 });
        stream.end('page');
      }, 50);
    }
    stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
    void sendEvents(
      (text) => stream.write(text),
      () => stream.end(),
    );
  });
  for (const app of [http1App, http2App])
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const pki = await createTestPki(join(dir, 'pki'));
  const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
  const appPorts = [http1App, http2App].map((app) => (app.address() as AddressInfo).port);
  const server = await startProxyProcess([
    ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
    ...appPorts.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  proxies.push(server);
  const client = await startProxyProcess([
    ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
    ...server.inbound.flatMap(({ port }) => [
      '--upstream',
      `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${port}`,
    ]),
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  proxies.push(client);
  await Promise.all(proxies.map((proxy) => proxy.untilReady()));
  outboundPort.http1 = client.outbound[0]!.port;
  outboundPort.http2 = client.outbound[1]!.port;
});

after(async () => {
  await Promise.all(proxies.map((proxy) => proxy.stop()));
  for (const app of [http1App, http2App]) app?.close();
  http1App?.closeAllConnections();
  await rm(dir, { recursive: true, force: true });
});

/** Runs curl; releases each event once curl has printed the one before; resolves with all it printed. */
function streamWithCurl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    waiting.clear();
    const curl = spawn('curl', ['-sS', '-N', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let printed = '';
    let errors = '';
    // No event came for a while: held somewhere on the way.
    const timer = setTimeout(() => {
      curl.kill();
      reject(new Error(`curl printed only ${JSON.stringify(printed)} in 8 s: the stream was held`));
    }, 8000);
    curl.stdout.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
      for (let n = 1; n < EVENTS; n++) {
        if (printed.includes(`event ${n - 1}\n`)) waiting.get(n)?.();
      }
    });
    curl.stderr.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    curl.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(printed);
      else reject(new Error(`curl exited ${code}: ${errors}`));
    });
  });
}

const expected = Array.from({ length: EVENTS }, (_, n) => `data: event ${n}\n\n`).join('');

test('HTTP/1: each Server-Sent Event reaches curl before the app sends the next', async () => {
  assert.equal(await streamWithCurl([`http://127.0.0.1:${outboundPort.http1}/events`]), expected);
});

test('HTTP/2: each Server-Sent Event reaches curl before the app sends the next', async () => {
  const printed = await streamWithCurl([
    '--http2-prior-knowledge',
    `http://127.0.0.1:${outboundPort.http2}/events`,
  ]);
  assert.equal(printed, expected);
});

test('HTTP/2: the app’s 103 Early Hints reach curl ahead of the 200', async () => {
  const heads = await new Promise<string>((resolve, reject) => {
    const curl = spawn('curl', [
      '-sS',
      '-v',
      '--http2-prior-knowledge',
      `http://127.0.0.1:${outboundPort.http2}/hints`,
    ]);
    let stderr = '';
    curl.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    curl.stdout.resume();
    curl.once('exit', (code) => (code === 0 ? resolve(stderr) : reject(new Error(stderr))));
  });
  const lines = heads.split('\n').filter((line) => line.startsWith('< '));
  assert.deepEqual(
    lines.filter((line) => line.startsWith('< HTTP/')).map((line) => line.trim()),
    ['< HTTP/2 103', '< HTTP/2 200'],
    heads,
  );
  assert.ok(
    lines.some((line) => line.trim() === '< link: </style.css>; rel=preload'),
    heads,
  );
});
