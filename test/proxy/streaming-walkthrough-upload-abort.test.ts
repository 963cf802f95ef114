// A client that stops mid-upload (its process exits: FIN after part of the body) must reach the
// app as an aborted request, and must cost nothing else. Before, node:http reported the cut body
// from its end-of-stream handling, the proxy's answer to it threw, and the throw killed the
// sidecar: one such client took down the outbound and the inbound with every connection on them.
// Real sidecar pair, a node:http app recording how each upload ended.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { type Http1Pair, startHttp1Pair, statuses, VIAS } from './http1-pair.ts';

let pair: Http1Pair;
/** `path outcome bytes` of every upload the apps saw end. */
const uploads: string[] = [];
let onUpload = () => {};

before(async () => {
  pair = await startHttp1Pair({
    name: 'mutual-streaming-abort-',
    createApp: () =>
      createServer((request, response) => {
        let bytes = 0;
        const record = (outcome: string) => {
          uploads.push(`${request.url} ${outcome} ${bytes}`);
          onUpload();
        };
        request.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        request.on('end', () => {
          record('complete');
          response.end(`got ${bytes}\n`);
        });
        request.on('error', () => record('aborted'));
      }),
  });
});

after(async () => {
  await pair?.stop();
});

/** Resolves with the app's record for `path` (5 s at most). */
function untilUpload(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the app saw no end of ${path}: ${uploads}`)), 5000);
    const check = () => {
      const found = uploads.find((line) => line.startsWith(`${path} `));
      if (found === undefined) return;
      clearTimeout(timer);
      resolve(found);
    };
    onUpload = check;
    check();
  });
}

const FRAMINGS = {
  'content-length': 'content-length: 1000000\r\n\r\n',
  chunked: `transfer-encoding: chunked\r\n\r\n${(100_000).toString(16)}\r\n`,
};

for (const via of VIAS) {
  for (const [framing, head] of Object.entries(FRAMINGS)) {
    test(`${via}: a client gone mid-upload (${framing}) aborts the app's request; the sidecars serve on`, async () => {
      const path = `/upload-${via}-${framing}`;
      const socket = await pair.open(via);
      socket.on('error', () => {});
      socket.resume();
      socket.write(`POST ${path} HTTP/1.1\r\nhost: emoji\r\n${head}`);
      socket.write(Buffer.alloc(100_000, 'a'));
      // Part of the body reached the app before the client went.
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.end();
      const seen = await untilUpload(path);
      assert.match(seen, / aborted \d+$/, seen);
      assert.ok(Number(seen.split(' ')[2]) > 0, seen);
      const answer = await pair.exchange(via, [
        'GET /after HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n',
      ]);
      assert.deepEqual(statuses(answer), ['200'], answer);
      assert.equal(pair.server.child.exitCode, null, pair.server.output());
      assert.equal(pair.client.child.exitCode, null, pair.client.output());
    });
  }
}
