import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { test } from 'node:test';
import { createDetachedHttpServer, PROXY_ERROR_HEADER } from './http-forward.ts';

test('a request whose handling throws gets a 502 naming the proxy; the connection and the next request live on', async () => {
  const bugs: string[] = [];
  const http = createDetachedHttpServer(
    (request, response) => {
      if (request.url === '/boom') throw new Error('kaboom');
      response.end('fine');
    },
    (error) => bugs.push(error.message),
  );
  const listener = createServer((socket) => http.emit('connection', socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
  try {
    const failed = await fetch(`${base}/boom`);
    assert.equal(failed.status, 502);
    assert.equal(failed.headers.get(PROXY_ERROR_HEADER), 'proxy_error');
    assert.match(await failed.text(), /kaboom/);
    assert.deepEqual(bugs, ['kaboom']);
    const next = await fetch(`${base}/ok`);
    assert.equal(await next.text(), 'fine');
  } finally {
    http.close();
    http.closeAllConnections();
    listener.close();
  }
});
