// node:http answers bytes that are not HTTP/1 (400) and a request head that does not come in time
// (408) itself, straight onto the connection. Behind pipelined requests still being answered, that
// answer went out first: the client read it as the answer to its first request, and the answers
// owed were lost. The proxy's HTTP/1 server writes it after every answer owed, then closes. Real
// sockets, a gated app, the headers timeout shortened to 1 s; through real sidecars in
// proxy-http1-framing.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { type AddressInfo, connect, createServer } from 'node:net';
import { test } from 'node:test';
import { createDetachedHttpServer } from '../../src/proxy/http-forward.ts';

async function startServer() {
  const held: (() => void)[] = [];
  const received: string[] = [];
  const http = createDetachedHttpServer(
    (request, response: ServerResponse) => {
      received.push(request.url ?? '');
      request.resume();
      held.push(() => response.end(`answer ${request.url}`));
    },
    (error) => {
      throw error;
    },
  );
  http.headersTimeout = 1000;
  (http as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = 100;
  http.emit('listening');
  const clientErrors: string[] = [];
  http.prependListener('clientError', (error: NodeJS.ErrnoException) => clientErrors.push(error.code ?? ''));
  const listener = createServer((socket) => http.emit('connection', socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return {
    port: (listener.address() as AddressInfo).port,
    received,
    /** Resolves once node:http has reported the connection's error. */
    clientError: () =>
      new Promise<string>((resolve) => {
        const check = () =>
          clientErrors.length > 0 ? resolve(clientErrors[0]!) : void setTimeout(check, 20);
        check();
      }),
    answerAll: () => {
      for (const answer of held.splice(0)) answer();
    },
    close() {
      listener.close();
      http.close();
      http.closeAllConnections();
    },
  };
}

const PIPELINED = 'GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n';

for (const { name, tail, status, code } of [
  {
    name: 'a malformed request',
    tail: 'POST /bad HTTP/1.1\r\nhost: x\r\ncontent-length: 1x\r\n\r\nx',
    status: '400 Bad Request',
    code: 'HPE_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'a head cut short',
    tail: 'GET /c HTTP/1.1\r\nho',
    status: '408 Request Timeout',
    code: 'ERR_HTTP_REQUEST_TIMEOUT',
  },
]) {
  test(`${name} pipelined behind requests not yet answered is answered after them`, async () => {
    const server = await startServer();
    try {
      const client = connect(server.port, '127.0.0.1');
      await once(client, 'connect');
      client.setTimeout(10_000, () => client.destroy());
      let text = '';
      client.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      const closed = once(client, 'close');
      client.write(PIPELINED + tail);
      assert.equal(await server.clientError(), code);
      // The app answers only once node:http has reported the error.
      server.answerAll();
      await closed;
      assert.match(
        text,
        new RegExp(
          `^HTTP/1\\.1 200 [\\s\\S]*answer /aHTTP/1\\.1 200 [\\s\\S]*answer /bHTTP/1\\.1 ${status}\\r\\n[\\s\\S]*\\r\\n\\r\\n$`,
        ),
        text,
      );
      assert.deepEqual(server.received, ['/a', '/b']);
    } finally {
      server.close();
    }
  });
}
