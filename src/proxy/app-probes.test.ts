import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { test } from 'node:test';
import { ADMIN_IDLE_TIMEOUT_MS, createAdminServer } from '../admin/index.ts';
import { createRegistry } from '../metrics/index.ts';
import {
  appProbeRoutes,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  probeApp,
} from './app-probes.ts';

test('an app answering a status below 100 fails the probe with 503 instead of taking the admin port down', async () => {
  // Node's HTTP parser reads "000" and "099" as statuses 0 and 99.
  const app = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end('HTTP/1.1 000 Nothing\r\ncontent-length: 0\r\n\r\n'));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const probe = { port: (app.address() as AddressInfo).port, path: '/healthz', headers: [], timeoutMs: 2000 };
  const admin = createAdminServer({
    registry: createRegistry(),
    notReadyReason: () => undefined,
    routes: appProbeRoutes(new Map([['/app-health/web/livez', probe]])),
  });
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  try {
    const result = await probeApp(probe);
    assert.equal(result.status, 503);
    assert.match(result.message, /answered 0, which is not an HTTP status/);
    const base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
    const answer = await fetch(`${base}/app-health/web/livez`);
    assert.equal(answer.status, 503);
    assert.match(await answer.text(), /answered 0, which is not an HTTP status/);
    assert.equal((await fetch(`${base}/live`)).status, 200);
  } finally {
    admin.closeAllConnections();
    admin.close();
    app.close();
  }
});

test('a probe whose timeoutSeconds is longer than the admin idle timeout still gets the app answer', {
  timeout: 30_000,
}, async () => {
  // The admin port closes sockets silent for ADMIN_IDLE_TIMEOUT_MS; the kubelet waits for the
  // probe's own timeout, and a slow app answering within it passes.
  const app = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      const timer = setTimeout(
        () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'),
        ADMIN_IDLE_TIMEOUT_MS + 1000,
      );
      socket.once('close', () => clearTimeout(timer));
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const probe = {
    port: (app.address() as AddressInfo).port,
    path: '/healthz',
    headers: [],
    timeoutMs: ADMIN_IDLE_TIMEOUT_MS + 5000,
  };
  const admin = createAdminServer({
    registry: createRegistry(),
    notReadyReason: () => undefined,
    routes: appProbeRoutes(new Map([['/app-health/web/readyz', probe]])),
  });
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  try {
    const answer = await fetch(
      `http://127.0.0.1:${(admin.address() as AddressInfo).port}/app-health/web/readyz`,
    );
    assert.equal(answer.status, 200);
  } finally {
    admin.closeAllConnections();
    admin.close();
    app.close();
  }
});

test('gRPC health messages: the request framed with its service, the response status read, malformed ones named', () => {
  assert.deepEqual([...encodeHealthCheckRequest('')], [0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeHealthCheckRequest('ab')], [0, 0, 0, 0, 4, 0x0a, 2, 0x61, 0x62]);
  // A 200-byte name: its length is a two-byte varint (0xc8 0x01).
  assert.deepEqual(
    [...encodeHealthCheckRequest('x'.repeat(200)).subarray(0, 8)],
    [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01],
  );
  const frame = (...bytes: number[]) => Buffer.from([0, 0, 0, 0, bytes.length, ...bytes]);
  const table: [string, Buffer, ReturnType<typeof decodeHealthCheckResponse>][] = [
    ['SERVING', frame(0x08, 1), { status: 1 }],
    ['NOT_SERVING', frame(0x08, 2), { status: 2 }],
    ['an empty message is UNKNOWN (proto3 leaves out 0)', frame(), { status: 0 }],
    ['unknown fields skipped', frame(0x12, 2, 0x61, 0x62, 0x08, 1, 0x1d, 1, 2, 3, 4), { status: 1 }],
    ['nothing', Buffer.alloc(0), { error: 'no response message' }],
    [
      'compressed',
      Buffer.from([1, 0, 0, 0, 2, 0x08, 1]),
      { error: 'a compressed response, though none was offered' },
    ],
    ['a short frame', Buffer.from([0, 0, 0, 0, 9, 0x08, 1]), { error: 'a response frame of 9 bytes in 2' }],
    ['a truncated varint', frame(0x08, 0x80), { error: 'a malformed response message' }],
    ['a length past the end', frame(0x12, 9, 0x61), { error: 'a malformed response message' }],
    ['a group wire type', frame(0x0b), { error: 'a malformed response message' }],
  ];
  for (const [name, body, expected] of table)
    assert.deepEqual(decodeHealthCheckResponse(body), expected, name);
});
