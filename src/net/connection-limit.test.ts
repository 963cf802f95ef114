import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { createTestPki, waitUntil } from '../testing/mesh-pki.ts';
import { type ConnectionLimit, limitConnections, type ShedState } from './connection-limit.ts';

let dir: string;
let credentials: { key: string; cert: string };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-connection-limit-'));
  const files = await (await createTestPki(dir)).workload('server');
  credentials = { key: await readFile(files.keyFile, 'utf8'), cert: await readFile(files.certFile, 'utf8') };
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A promise and the function that resolves it. */
function gate() {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

/**
 * A real HTTPS server capped at `max`: GET /answer is answered when `finish()` is called (its
 * answer being made all along), GET /held is held (limit.hold) until then, GET /released is held
 * until `release()` and answered at `finish()`, GET /now is answered at once.
 */
async function startServer(max: number) {
  const shed: ShedState[] = [];
  const finished = gate();
  const released = gate();
  let limit: ConnectionLimit | undefined;
  const server: Server = createServer(credentials, async (request, response) => {
    request.resume();
    if (request.url !== '/now') {
      const release = request.url === '/answer' ? () => {} : limit!.hold(request);
      if (request.url === '/released') await released.opened;
      else await finished.opened;
      release();
      await finished.opened;
    }
    response.end(`${request.url}\n`);
  });
  limit = limitConnections(server, { maxConnections: max, onShed: (state) => shed.push(state) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return { server, limit, shed, finish: finished.open, release: released.open, port };
}

/** A TLS client that sent `GET path` (none when undefined), with all it received and whether it closed. */
async function client(port: number, path?: string) {
  const socket: TLSSocket = connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
  const watched = { socket, received: '', isClosed: false };
  socket.on('data', (chunk: Buffer) => {
    watched.received += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    watched.isClosed = true;
  });
  await once(socket, 'secureConnect');
  if (path !== undefined) socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
  return watched;
}

test('at the cap a held request goes before one being answered; answered ones are never closed', async () => {
  const { server, limit, shed, finish, port } = await startServer(3);
  try {
    const answering = [await client(port, '/answer'), await client(port, '/answer')];
    const held = await client(port, '/held');
    await waitUntil(
      async () => limit.openByState().answering === 2 && limit.openByState().held === 1,
      'states',
    );
    const newcomer = await client(port, '/now');
    await waitUntil(async () => held.isClosed, 'the held one closed');
    assert.deepEqual(shed, ['held']);
    await waitUntil(async () => newcomer.received.includes('/now'), 'the newcomer answered');
    finish();
    for (const one of answering) await waitUntil(async () => one.received.includes('/answer'), 'answered');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('when every connection is being answered, the newcomer is the one closed', async () => {
  const { server, limit, shed, finish, port } = await startServer(2);
  try {
    const answering = [await client(port, '/answer'), await client(port, '/answer')];
    await waitUntil(async () => limit.openByState().answering === 2, 'two being answered');
    const newcomer = client(port);
    await assert.rejects(newcomer, 'closed before its handshake ended');
    assert.deepEqual(shed, ['new']);
    finish();
    for (const one of answering) await waitUntil(async () => one.received.includes('/answer'), 'answered');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('an idle connection goes before an older held one, then the oldest held one', async () => {
  const { server, limit, shed, port } = await startServer(2);
  try {
    const held = await client(port, '/held');
    const idle = await client(port, '/now');
    await waitUntil(async () => idle.received.includes('/now'), 'the idle one answered once');
    await waitUntil(async () => limit.openByState().held === 1 && limit.openByState().idle === 1, 'states');
    const newcomer = await client(port, '/held');
    await waitUntil(async () => idle.isClosed, 'the idle one closed');
    assert.equal(held.isClosed, false);
    await waitUntil(async () => limit.openByState().held === 2, 'two held');
    const last = await client(port);
    await waitUntil(async () => held.isClosed, 'the older held one closed');
    assert.equal(newcomer.isClosed, false);
    assert.deepEqual(shed, ['idle', 'held']);
    last.socket.destroy();
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('a request no longer held is being answered: the newer one still held goes first', async () => {
  const { server, limit, shed, release, finish, port } = await startServer(2);
  try {
    const released = await client(port, '/released');
    const held = await client(port, '/held');
    await waitUntil(async () => limit.openByState().held === 2, 'two held');
    release();
    await waitUntil(async () => limit.openByState().answering === 1, 'one being answered');
    await client(port, '/now');
    await waitUntil(async () => held.isClosed, 'the held one closed');
    assert.deepEqual(shed, ['held']);
    finish();
    await waitUntil(async () => released.received.includes('/released'), 'the released one answered');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
