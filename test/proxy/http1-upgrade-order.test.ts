// An upgrade (WebSocket-style `Connection: Upgrade`) pipelined behind requests whose answers are
// still owed gets its 101 only after those answers: HTTP/1 answers go in request order. Written at
// once, the 101 was read as the answer to the first request. Real sidecars, a raw-socket client, an
// app that answers GETs after 300 ms and echoes on an upgraded connection.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type Http1Pair, startHttp1Pair, statuses, VIAS } from './http1-pair.ts';

let pair: Http1Pair;

before(async () => {
  pair = await startHttp1Pair({
    name: 'mutual-upgrade-order-',
    createApp: () => {
      const app = createServer((request, response) => {
        request.resume();
        setTimeout(() => response.end(`late ${request.url}\n`), 300);
      });
      app.on('upgrade', (_request, socket: Socket, head: Buffer) => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
        if (head.length > 0) socket.write(head);
        socket.on('data', (chunk: Buffer) => socket.write(chunk));
        socket.on('error', () => {});
      });
      return app;
    },
  });
});

after(() => pair.stop());

const PIPELINED =
  'GET /a HTTP/1.1\r\nhost: x\r\n\r\n' +
  'GET /b HTTP/1.1\r\nhost: x\r\n\r\n' +
  'GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n';

for (const via of VIAS) {
  test(`${via}: an upgrade pipelined behind owed answers is answered after them, then echoes`, async () => {
    const socket = await pair.open(via);
    let text = '';
    let isClosed = false;
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.once('close', () => (isClosed = true));
    // Only so that a failure reports what came back instead of waiting on a connection left open.
    const until = (isDone: () => boolean) =>
      new Promise<void>((resolve) => {
        const started = Date.now();
        const check = () =>
          isDone() || isClosed || Date.now() - started > 5000 ? resolve() : void setTimeout(check, 20);
        check();
      });
    try {
      socket.write(PIPELINED);
      await until(() => statuses(text).length === 3);
      socket.write('PING');
      await until(() => text.endsWith('PING'));
      assert.deepEqual(statuses(text), ['200', '200', '101'], JSON.stringify(text));
      assert.match(text, /late \/a\n[\s\S]*late \/b\n[\s\S]*101 Switching Protocols[\s\S]*\r\n\r\nPING$/);
    } finally {
      socket.destroy();
    }
  });
}

for (const via of VIAS) {
  test(`${via}: a CONNECT pipelined behind owed answers is refused after them`, async () => {
    const text = await pair.exchange(via, [
      'GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\nCONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n',
    ]);
    assert.deepEqual(statuses(text), ['200', '200', '501'], JSON.stringify(text));
    assert.match(text, /late \/a\n[\s\S]*late \/b\n[\s\S]*501 Not Implemented/);
  });
}
