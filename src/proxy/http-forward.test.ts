import assert from 'node:assert/strict';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { type AddressInfo, connect, createServer } from 'node:net';
import { test } from 'node:test';
import {
  CLIENT_ID_HEADER,
  createDetachedHttpServer,
  forwardedRequestHeaders,
  forwardRequest,
  isClientIdHeader,
  Pool,
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

/** A proxy forwarding every request to an app served by `handler`, both on 127.0.0.1. */
async function forwardingProxy(handler: RequestListener) {
  const app = createHttpServer(handler);
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const pool = new Pool(`http://127.0.0.1:${(app.address() as AddressInfo).port}`, { connections: 4 });
  const http = createDetachedHttpServer(
    (request, response) =>
      forwardRequest(request, response, pool, forwardedRequestHeaders(request), (error) =>
        response.writeHead(502).end(error.message),
      ),
    () => {},
  );
  const listener = createServer((socket) => http.emit('connection', socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return {
    port: (listener.address() as AddressInfo).port,
    async close() {
      await pool.destroy();
      http.close();
      http.closeAllConnections();
      listener.close();
      app.close();
      app.closeAllConnections();
    },
  };
}

test('an app that answers before reading the whole upload: the rest is read and the next request on the connection is answered', async () => {
  // As voting in the demo does: POST /vote answers at once and never reads the body.
  const proxy = await forwardingProxy((request, response) => response.end(`answered ${request.url}`));
  const socket = connect(proxy.port, '127.0.0.1');
  try {
    let text = '';
    let onText = () => {};
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      onText();
    });
    const answered = (count: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${count} answer(s) expected in 5 s, got: ${text}`)),
          5000,
        );
        onText = () => {
          if ((text.match(/HTTP\/1\.1 200/g) ?? []).length >= count) {
            clearTimeout(timer);
            resolve();
          }
        };
        onText();
      });
    const size = 4 << 20;
    // The first half of the body goes out, the app answers, then the rest follows with a second request.
    socket.write(`POST /vote HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
    socket.write(Buffer.alloc(size / 2, 'y'));
    await answered(1);
    socket.write(Buffer.alloc(size / 2, 'y'));
    socket.write('GET /results HTTP/1.1\r\nHost: a\r\n\r\n');
    await answered(2);
    assert.match(text, /answered \/vote[\s\S]*answered \/results/);
  } finally {
    socket.destroy();
    await proxy.close();
  }
});

test('an app that reads an upload and dies without answering: the client gets a 502, not a wait forever', async () => {
  const proxy = await forwardingProxy((request, response) => {
    request.resume();
    request.on('end', () => response.socket?.destroy());
  });
  try {
    for (const body of [undefined, 'a vote', 'x'.repeat(1 << 20)]) {
      const answer = await fetch(`http://127.0.0.1:${proxy.port}/vote`, {
        method: body === undefined ? 'GET' : 'POST',
        body,
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(answer.status, 502, `body of ${body?.length ?? 0} bytes`);
      assert.match(await answer.text(), /other side closed/);
    }
  } finally {
    await proxy.close();
  }
});
