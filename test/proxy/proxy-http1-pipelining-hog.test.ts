// A client that pipelines hundreds of requests for a large answer and never reads: it must cost
// one connection to the app, not the port's whole pool, so that other clients are served while it
// hangs there, and everything it held must be given back when it leaves. Before, each pipelined
// request was sent at once on its own pooled connection (512 of them), and the answers of those
// still queued behind the first were never aborted when the client left: the port served nobody,
// then or after.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { startHttp1Pair, statuses, VIAS } from './http1-pair.ts';

const LARGE = Buffer.alloc(1 << 20, 97);
const SMALL = 'GET /small HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n';

test('a pipelining client that never reads does not starve the port, during or after', {
  timeout: 60_000,
}, async () => {
  const pair = await startHttp1Pair({
    name: 'mutual-pipelining-hog-',
    createApp: () =>
      createServer((request, response) => response.end(request.url === '/small' ? 'small\n' : LARGE)),
  });
  const hogs: Socket[] = [];
  try {
    for (const via of VIAS) {
      const hog = await pair.open(via);
      hogs.push(hog);
      hog.pause();
      hog.on('error', () => {});
      hog.write('GET / HTTP/1.1\r\nhost: emoji\r\n\r\n'.repeat(1000));
    }
    // Long enough for every pipelined request to have been read and forwarded.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    for (const via of VIAS)
      assert.deepEqual(statuses(await pair.exchange(via, [SMALL])), ['200'], `${via}, while held`);

    for (const hog of hogs) hog.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const via of VIAS)
      assert.deepEqual(statuses(await pair.exchange(via, [SMALL])), ['200'], `${via}, after`);
    for (const proxy of [pair.server, pair.client]) assert.equal(proxy.child.exitCode, null);
  } finally {
    for (const hog of hogs) hog.destroy();
    await pair.stop();
  }
});
