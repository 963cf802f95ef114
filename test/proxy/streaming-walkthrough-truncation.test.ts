// An answer cut short by an app that dies mid-answer must reach the client as an error, never as
// a clean end that passes for the whole answer: HTTP/1 chunked without its last chunk, HTTP/1 with
// fewer bytes than its Content-Length, an HTTP/2 stream reset or connection lost midway. curl is
// the client, through a real sidecar pair (and the inbound alone on a PERMISSIVE port for HTTP/1);
// its exit code says whether it took the answer for whole.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttp1Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import { type Http1Pair, startHttp1Pair } from './http1-pair.ts';

let http1: Http1Pair;
let dir: string;
let http2App: Http2Server;
const http2Proxies: ProxyProcess[] = [];

before(async () => {
  http1 = await startHttp1Pair({
    name: 'mutual-streaming-truncation-',
    createApp: () =>
      createHttp1Server((request, response) => {
        request.resume();
        if (request.url === '/whole') return void response.end('whole');
        if (request.url === '/chunked-cut') {
          response.writeHead(200, { 'content-type': 'text/plain' });
          response.write('part one;');
          // The app dies: its connection closes with no last chunk.
          return void setTimeout(() => response.socket?.destroy(), 100);
        }
        response.writeHead(200, { 'content-length': '1000' });
        response.write('x'.repeat(400));
        setTimeout(() => response.socket?.destroy(), 100);
      }),
  });
  dir = await mkdtemp(join(tmpdir(), 'mutual-streaming-truncation-h2-'));
  http2App = createHttp2Server();
  http2App.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.write('part one;');
    setTimeout(() => {
      // destroy, not close(code): node ends the stream cleanly first on close() with DATA pending.
      if (headers[':path'] === '/reset') stream.destroy(new Error('the app died'));
      else stream.session?.destroy();
    }, 100);
  });
  await new Promise<void>((resolve) => http2App.listen(0, '127.0.0.1', resolve));
  const pki = await createTestPki(join(dir, 'pki'));
  const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
  const server = await startProxyProcess([
    ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(http2App.address() as AddressInfo).port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  http2Proxies.push(server);
  http2Proxies.push(
    await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]),
  );
  await Promise.all(http2Proxies.map((proxy) => proxy.untilReady()));
});

after(async () => {
  await http1?.stop();
  await Promise.all(http2Proxies.map((proxy) => proxy.stop()));
  http2App?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** curl's exit code and what it printed for `url` (0: it took the answer for whole). */
function curl(url: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '8', ...args, url], (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code) : 0, stdout, stderr });
    });
  });
}

for (const via of ['outbound', 'plaintext'] as const) {
  const port = () => (via === 'outbound' ? http1.client.outbound[0]!.port : http1.server.inbound[1]!.port);

  test(`HTTP/1 ${via}: a whole answer is a clean end (exit 0)`, async () => {
    const { code, stdout } = await curl(`http://127.0.0.1:${port()}/whole`);
    assert.deepEqual({ code, stdout }, { code: 0, stdout: 'whole' });
  });

  test(`HTTP/1 ${via}: chunks without the last one are an error, not a clean end`, async () => {
    const { code, stdout, stderr } = await curl(`http://127.0.0.1:${port()}/chunked-cut`);
    assert.equal(stdout, 'part one;');
    assert.equal(code, 18, stderr);
  });

  test(`HTTP/1 ${via}: fewer bytes than the Content-Length are an error, not a clean end`, async () => {
    const { code, stdout, stderr } = await curl(`http://127.0.0.1:${port()}/length-cut`);
    assert.equal(stdout.length, 400);
    assert.equal(code, 18, stderr);
  });
}

for (const [path, what] of [
  ['/reset', 'a stream the app resets'],
  ['/lost', 'a connection the app loses'],
] as const) {
  test(`HTTP/2 through the pair: ${what} midway is an error, not a clean end`, async () => {
    const port = http2Proxies[1]!.outbound[0]!.port;
    const { code, stdout, stderr } = await curl(`http://127.0.0.1:${port}${path}`, '--http2-prior-knowledge');
    assert.equal(stdout, 'part one;');
    assert.notEqual(code, 0, `curl took it for a whole answer: ${stderr}`);
  });
}
