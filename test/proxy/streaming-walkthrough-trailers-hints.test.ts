// An app's HTTP/1 chunked trailers and `103 Early Hints` reach the client through a sidecar pair,
// as Envoy and Linkerd pass them; before, both were dropped (a client checking a trailer checksum
// saw none, a browser got no head start on its preloads). curl is the client: `--raw` prints the
// trailers as sent, `-v` each answer head, 103 included.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { type Http1Pair, startHttp1Pair } from './http1-pair.ts';

const run = promisify(execFile);
let pair: Http1Pair;

before(async () => {
  pair = await startHttp1Pair({
    name: 'mutual-streaming-trailers-',
    createApp: () =>
      createServer((request, response) => {
        request.resume();
        if (request.url === '/trailers') {
          response.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
          response.write('part one;');
          response.addTrailers({ 'x-checksum': 'sha256=abc123', 'content-type': 'text/evil' });
          return void setTimeout(() => response.end('part two'), 50);
        }
        if (request.url === '/hints') {
          response.writeEarlyHints({
            link: ['</style.css>; rel=preload; as=style', '</app.js>; rel=preload'],
          });
          return void setTimeout(() => response.end('page'), 50);
        }
        response.end('plain');
      }),
  });
});

after(async () => {
  await pair?.stop();
});

/** curl's answer to `path` through `port`: stdout and the verbose lines of each answer head. */
async function curl(port: number, path: string, ...args: string[]) {
  const { stdout, stderr } = await run('curl', ['-sS', '-v', ...args, `http://127.0.0.1:${port}${path}`]);
  const heads = stderr
    .split('\n')
    .filter((line) => line.startsWith('< '))
    .map((line) => line.slice(2).trim());
  return { stdout, heads };
}

const ports = () => ({
  outbound: pair.client.outbound[0]!.port,
  plaintext: pair.server.inbound[1]!.port,
});

for (const via of ['outbound', 'plaintext'] as const) {
  test(`${via}: the app's chunked trailers reach curl --raw, framing fields left out`, async () => {
    const { stdout, heads } = await curl(ports()[via], '/trailers', '--raw');
    assert.ok(
      heads.includes('Trailer: x-checksum') || heads.includes('trailer: x-checksum'),
      heads.join('\n'),
    );
    assert.match(stdout, /\r\n0\r\nx-checksum: sha256=abc123\r\n\r\n$/, JSON.stringify(stdout));
    assert.doesNotMatch(stdout.split('\r\n0\r\n')[1]!, /content-type/i);
  });

  test(`${via}: 103 Early Hints reach curl before the 200, with both Links`, async () => {
    const { stdout, heads } = await curl(ports()[via], '/hints');
    assert.equal(stdout, 'page');
    const statusLines = heads.filter((line) => line.startsWith('HTTP/'));
    assert.deepEqual(statusLines, ['HTTP/1.1 103 Early Hints', 'HTTP/1.1 200 OK'], heads.join('\n'));
    const link = heads.find((line) => /^link:/i.test(line));
    assert.match(
      link ?? '',
      /<\/style\.css>; rel=preload; as=style, <\/app\.js>; rel=preload/,
      heads.join('\n'),
    );
  });

  test(`${via}: an HTTP/1.0 client gets neither 103 nor trailers`, async () => {
    const hinted = await curl(ports()[via], '/hints', '--http1.0');
    assert.deepEqual(
      hinted.heads.filter((line) => line.startsWith('HTTP/')),
      ['HTTP/1.1 200 OK'],
      hinted.heads.join('\n'),
    );
    const trailed = await curl(ports()[via], '/trailers', '--http1.0', '--raw');
    assert.equal(trailed.stdout, 'part one;part two');
  });
}
