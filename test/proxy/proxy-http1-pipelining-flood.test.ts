// A client that writes pipelined requests as fast as it can and never reads must not be read
// without end: each request it sends is parsed into objects the proxy keeps until it is answered
// (~5 KB each), and the app answers them one at a time. Before, the sidecar read them all: 100,000
// small GETs (3 MB on the wire) took it from 94 to 584 MB RSS, on every way in. Now it stops
// reading the connection while a few dozen answers are owed, as Envoy and nginx do, and the bytes
// wait in the kernel: the client's writes stall. Once the app answers, every request is answered,
// in order, and the same connection goes on.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { startHttp1Pair, statuses, VIAS } from './http1-pair.ts';

const PAD = 'x'.repeat(8000);
/** Far more than the socket buffers on the way to the proxy hold (the proxy stopped, ~4 MB were taken). */
const FLOOD_BYTES = 64 << 20;
const SMALL = 'GET /small HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n';

/** GETs and POSTs with a small body, each numbered: the app answers with the number. */
function pipelined(from: number, count: number): string {
  let text = '';
  for (let n = from; n < from + count; n++) {
    text +=
      n % 2 === 0
        ? `GET /${n} HTTP/1.1\r\nhost: emoji\r\nx-pad: ${PAD}\r\n\r\n`
        : `POST /${n} HTTP/1.1\r\nhost: emoji\r\nx-pad: ${PAD}\r\ncontent-length: 5\r\n\r\nhello`;
  }
  return text;
}

/** Writes numbered requests until the proxy stops taking them (no 'drain' in 2 s) or FLOOD_BYTES are taken. */
async function flood(hog: Socket): Promise<{ requests: number; acceptedBytes: number }> {
  let requests = 0;
  let acceptedBytes = 0;
  while (acceptedBytes < FLOOD_BYTES) {
    const batch = pipelined(requests, 16);
    requests += 16;
    const size = Buffer.byteLength(batch);
    if (hog.write(batch, () => (acceptedBytes += size))) continue;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      once(hog, 'drain').then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
    ]);
    clearTimeout(timer);
    if (!drained) break;
  }
  return { requests, acceptedBytes };
}

test('a client that pipelines without reading is not read past a few dozen owed answers, on every way in', {
  timeout: 120_000,
}, async () => {
  let isGateOpen = false;
  const held: (() => void)[] = [];
  const answer = (response: ServerResponse, n: string) => response.setHeader('x-n', n).end(`${n}\n`);
  const pair = await startHttp1Pair({
    name: 'mutual-pipelining-flood-',
    createApp: () =>
      createServer((request, response) => {
        request.resume();
        if (request.url === '/small') return void response.end('small\n');
        const n = request.url!.slice(1);
        if (isGateOpen) answer(response, n);
        else held.push(() => answer(response, n));
      }),
  });
  const hogs: Socket[] = [];
  try {
    for (const via of VIAS) {
      isGateOpen = false;
      const hog = await pair.open(via);
      hogs.push(hog);
      hog.on('error', () => {});
      hog.pause();
      const { requests, acceptedBytes } = await flood(hog);
      assert.ok(
        acceptedBytes < FLOOD_BYTES / 2,
        `${via}: the proxy read ${acceptedBytes} bytes (${Math.round(acceptedBytes / 8000)} requests) while the app answered none`,
      );
      assert.deepEqual(statuses(await pair.exchange(via, [SMALL])), ['200'], `${via}, while held`);

      // The app answers: everything written is answered, in order, on the same connection.
      let text = '';
      const answered = new Promise<void>((resolve, reject) => {
        hog.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
          if ((text.match(/\r\nx-n: /g)?.length ?? 0) >= requests) resolve();
        });
        hog.once('close', () => reject(new Error(`${via}: closed after ${statuses(text).length} answers`)));
      });
      isGateOpen = true;
      for (const release of held.splice(0)) release();
      hog.resume();
      await answered;
      const numbers = [...text.matchAll(/\r\nx-n: (\d+)/g)].map((match) => Number(match[1]));
      assert.deepEqual(
        numbers,
        Array.from({ length: requests }, (_, n) => n),
        `${via}: answers in order`,
      );
      assert.ok(
        statuses(text).every((status) => status === '200'),
        `${via}: ${statuses(text).length} answers`,
      );
      hog.destroy();
    }
    for (const proxy of [pair.server, pair.client]) assert.equal(proxy.child.exitCode, null);
  } finally {
    for (const hog of hogs) hog.destroy();
    await pair.stop();
  }
});
