import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer } from 'node:net';
import { test } from 'node:test';
import {
  CLIENT_ID_HEADER,
  createDetachedHttpServer,
  forwardedRequestHeaders,
  isClientIdHeader,
  PROXY_ERROR_HEADER,
} from './http-forward.ts';

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

test('forwardedRequestHeaders drops x-mutual-client-id in every spelling an app may read as it', async () => {
  const http = createDetachedHttpServer(
    (request, response) =>
      response.end(JSON.stringify(forwardedRequestHeaders(request, CLIENT_ID_HEADER, 'real'))),
    () => {},
  );
  const listener = createServer((socket) => http.emit('connection', socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  try {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect((listener.address() as AddressInfo).port, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      socket.on('close', () => resolve(text));
      socket.end(
        'GET / HTTP/1.1\r\nHost: a\r\nX-Mutual-Client-Id: forged\r\nX_Mutual_Client_Id: forged\r\nx-mutual_client-id: forged\r\nX-Other: kept\r\nConnection: close\r\n\r\n',
      );
    });
    const headers = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as string[];
    assert.deepEqual(headers, ['Host', 'a', 'X-Other', 'kept', CLIENT_ID_HEADER, 'real']);
    assert.equal(isClientIdHeader('x-mutual-client-idx'), false);
  } finally {
    http.close();
    http.closeAllConnections();
    listener.close();
  }
});
