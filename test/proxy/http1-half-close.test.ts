// A client that half-closes (FIN) after its whole request, through a real sidecar pair, three
// ways (the outbound, mTLS to the inbound, plaintext to a PERMISSIVE port). It may still read the
// answer, so one that comes within the wait gets through; but a client that gave up and closed
// looks the same, and its request held a pooled connection and the app's handler for as long as
// the app did not answer: for good, from a handler that never answers. Now it is let go
// HALF_CLOSED_ANSWER_WAIT_MS (10 s) after the FIN, by each sidecar in turn.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { HALF_CLOSED_ANSWER_WAIT_MS } from '../../src/proxy/http-forward.ts';
import { type Http1Pair, startHttp1Pair, statuses, VIAS, type Via } from './http1-pair.ts';

let pair: Http1Pair;
/** The /hang requests the apps got, by their x-case header: when the sidecar let go of each. */
const hanging = new Map<string, { closedAt?: number }>();

before(async () => {
  pair = await startHttp1Pair({
    name: 'half-close-',
    createApp: () =>
      createServer((request, response) => {
        if (request.url === '/late') return void setTimeout(() => response.end('late'), 1000);
        const entry: { closedAt?: number } = {};
        hanging.set(String(request.headers['x-case']), entry);
        response.once('close', () => {
          entry.closedAt = Date.now();
        });
      }),
  });
});

after(() => pair?.stop());

/** Sends one request and half-closes at once; resolves with what came back once the sidecar closes. */
async function halfClosedExchange(via: Via, path: string, id: string) {
  const socket = await pair.open(via);
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const sentAt = Date.now();
  socket.end(`GET ${path} HTTP/1.1\r\nHost: app\r\nx-case: ${id}\r\n\r\n`);
  const guard = setTimeout(() => socket.destroy(), HALF_CLOSED_ANSWER_WAIT_MS + 15_000);
  await closed;
  clearTimeout(guard);
  return { text, sentAt };
}

test('a client that half-closes after its request still gets an answer that comes within the wait', async () => {
  for (const via of VIAS) {
    const { text } = await halfClosedExchange(via, '/late', `late-${via}`);
    assert.deepEqual(statuses(text), ['200'], `${via}: ${JSON.stringify(text)}`);
    assert.match(text, /\r\n\r\nlate$/, via);
  }
});

test('an answer that never comes: the app request is let go soon after the client half-closed', async () => {
  const results = await Promise.all(VIAS.map((via) => halfClosedExchange(via, '/hang', via)));
  // Through the outbound the inbound waits in turn once the outbound lets go: twice the wait.
  for (let i = 0; i < 150 && VIAS.some((via) => hanging.get(via)?.closedAt === undefined); i++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  for (const [index, via] of VIAS.entries()) {
    const entry = hanging.get(via);
    assert.ok(entry, `${via}: the app never got the request`);
    assert.ok(entry.closedAt !== undefined, `${via}: the app still holds the request of a client that left`);
    const heldMs = entry.closedAt - results[index]!.sentAt;
    assert.ok(
      heldMs >= HALF_CLOSED_ANSWER_WAIT_MS - 1000,
      `${via}: let go after ${heldMs} ms, before the wait was over`,
    );
    assert.equal(results[index]!.text, '', `${via}: nothing is answered to a client that may be gone`);
  }
  // The pooled connections are free again: a normal request through the outbound is answered.
  const socket = await pair.open('outbound');
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.endsWith('late')) resolve(text);
    });
    socket.write('GET /late HTTP/1.1\r\nHost: app\r\n\r\n');
  });
  socket.destroy();
  assert.deepEqual(statuses(answer), ['200']);
});
