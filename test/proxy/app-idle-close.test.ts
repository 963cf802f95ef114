// The inbound closes an idle connection to the app before the app would. An app that closes idle
// keep-alive connections itself (gunicorn: after 2 s, without telling) races the sidecar reusing
// one: a request written into it as it closes fails, and a POST or PUT cannot be sent again
// (realapps measured 3 of 8,000 PUTs answered 502 with gunicorn gthread, undici's pool keeping
// idle connections 4 s). Now they are closed after APP_KEEP_ALIVE_MS (1 s), from the sidecar's side.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { APP_KEEP_ALIVE_MS } from '../../src/proxy/inbound/http-inbound.ts';
import { type Http1Pair, startHttp1Pair, statuses } from './http1-pair.ts';

let pair: Http1Pair;
/** When the app last answered on each of its connections, and when the other side closed it. */
const connections = new Map<Socket, { answeredAt?: number; endedAt?: number }>();

before(async () => {
  pair = await startHttp1Pair({
    name: 'app-idle-close-',
    createApp: () => {
      const app = createServer((request, response) => {
        request.resume();
        request.on('end', () => {
          response.end('ok');
          connections.get(request.socket)!.answeredAt = Date.now();
        });
      });
      // The app itself keeps idle connections for a minute: any close seen here is the sidecar's.
      app.keepAliveTimeout = 60_000;
      app.on('connection', (socket: Socket) => {
        const entry: { answeredAt?: number; endedAt?: number } = {};
        connections.set(socket, entry);
        socket.once('end', () => {
          entry.endedAt = Date.now();
        });
      });
      return app;
    },
  });
});

after(() => pair?.stop());

test('an idle connection to the app is closed by the inbound within about a second, before gunicorn would close it', async () => {
  const answer = await pair.exchange('outbound', [
    'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
  ]);
  assert.deepEqual(statuses(answer), ['200']);
  await new Promise((resolve) => setTimeout(resolve, APP_KEEP_ALIVE_MS + 1_000));
  const answered = [...connections.values()].filter((entry) => entry.answeredAt !== undefined);
  assert.equal(answered.length, 1);
  const [entry] = answered;
  assert.ok(entry!.endedAt !== undefined, 'the inbound still holds its idle connection to the app after 2 s');
  const idleMs = entry!.endedAt - entry!.answeredAt!;
  assert.ok(idleMs < 2_000, `closed after ${idleMs} ms of idleness; gunicorn closes at 2 s`);
});
