// The proxy's HTTP/1 server stops reading a connection that owes too many answers (see
// proxy-http1-pipelining-flood.test.ts). A request head cut short where it stopped is the proxy's
// doing, not the client's: node:http's headers timeout must not fire on it while reading is held
// (it answered 408 to the client's first request, and dropped the rest), and must fire once reading
// resumes if the head still does not come. Real sockets, with the timeout shortened to 1 s.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { createDetachedHttpServer } from '../../src/proxy/http-forward.ts';

const HEADERS_TIMEOUT_MS = 1000;

async function startServer() {
  let isGateOpen = false;
  const held: (() => void)[] = [];
  const http = createDetachedHttpServer(
    (request, response: ServerResponse) => {
      request.resume();
      const answer = () => response.end(`${request.url}\n`);
      if (isGateOpen) answer();
      else held.push(answer);
    },
    (error) => {
      throw error;
    },
  );
  http.headersTimeout = HEADERS_TIMEOUT_MS;
  (http as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = 100;
  http.emit('listening');
  const timeouts: string[] = [];
  http.on('clientError', (error: NodeJS.ErrnoException) => timeouts.push(error.code ?? ''));
  const listener = createServer((socket) => http.emit('connection', socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return {
    http,
    port: (listener.address() as AddressInfo).port,
    /** Resolves once node:http's headers timeout has fired on a connection. */
    headersTimedOut: () =>
      new Promise<void>((resolve) => {
        const check = () => (timeouts.length > 0 ? resolve() : void setTimeout(check, 50));
        check();
      }),
    openGate() {
      isGateOpen = true;
      for (const answer of held.splice(0)) answer();
    },
    close() {
      listener.close();
      http.close();
      http.closeAllConnections();
    },
  };
}

const PIPELINED = Array.from({ length: 40 }, (_, n) => `GET /${n} HTTP/1.1\r\nhost: x\r\n\r\n`).join('');
const LAST = 'GET /last HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n';

async function openClient(port: number) {
  const client: Socket = connect(port, '127.0.0.1');
  await once(client, 'connect');
  // Only so that a failure reports what came back instead of hanging.
  client.setTimeout(10_000, () => client.destroy());
  let text = '';
  client.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  const closed = once(client, 'close').then(() => text);
  return { client, closed };
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => match[1]);

test('a head cut short where reading stopped is not timed out while held', async () => {
  const server = await startServer();
  try {
    const { client, closed } = await openClient(server.port);
    // 40 requests and the start of a 41st in one read: reading stops at 32 owed answers.
    client.write(PIPELINED + LAST.slice(0, 10));
    await server.headersTimedOut();
    client.write(LAST.slice(10));
    server.openGate();
    const text = await closed;
    assert.deepEqual(statuses(text), Array(41).fill('200'));
    assert.match(text, /\/39\n[\s\S]*\/last\n$/);
  } finally {
    server.close();
  }
});

test('the head is timed again once reading resumes', async () => {
  const server = await startServer();
  try {
    const { client, closed } = await openClient(server.port);
    client.write(PIPELINED + LAST.slice(0, 10));
    await server.headersTimedOut();
    server.openGate();
    // Every answer owed, then 408 for the head that never came.
    const text = await closed;
    assert.deepEqual(statuses(text), [...Array(40).fill('200'), '408']);
  } finally {
    server.close();
  }
});

test('a connection upgraded while reading is held is read once upgraded', async () => {
  const server = await startServer();
  // An upgrade that echoes what the client sends after it.
  server.http.on('upgrade', (_request, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
  try {
    const { client, closed } = await openClient(server.port);
    let text = '';
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    const until = (isDone: () => boolean) =>
      new Promise<void>((resolve) => {
        const check = () => (isDone() || isClosed ? resolve() : void setTimeout(check, 20));
        check();
      });
    client.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    // 40 requests (reading stops at 32 owed answers) and an upgrade, in one read.
    client.write(`${PIPELINED}GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n`);
    server.openGate();
    await until(() => statuses(text).length === 41);
    client.write('PING');
    // Held, the upgraded connection was never read again: no echo until the client gave up (10 s).
    await until(() => text.endsWith('PING'));
    assert.ok(text.endsWith('PING'), `no echo; the client read: ${JSON.stringify(text.slice(-200))}`);
    client.destroy();
  } finally {
    server.close();
  }
});
