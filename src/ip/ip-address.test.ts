import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { test } from 'node:test';
import { canonicalIp, isLoopbackIp } from './index.ts';

test('canonicalIp: one spelling for each address, IPv4-mapped as IPv4, anything else undefined', () => {
  const cases: Array<[string | undefined, string | undefined]> = [
    ['127.0.0.1', '127.0.0.1'],
    ['198.18.0.2', '198.18.0.2'],
    // IPv4-mapped, however written
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::FFFF:127.0.0.1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['::FFFF:7F00:0001', '127.0.0.1'],
    ['0:0:0:0:0:ffff:127.0.0.1', '127.0.0.1'],
    ['0000:0000:0000:0000:0000:FFFF:7f00:0001', '127.0.0.1'],
    ['::ffff:c612:2', '198.18.0.2'],
    ['::ffff:0.0.0.0', '0.0.0.0'],
    ['::ffff:ffff:ffff', '255.255.255.255'],
    ['::ffff:127.0.0.1%eth0', '127.0.0.1'],
    // IPv6 of their own: IPv4-translated, IPv4-compatible, NAT64, loopback, link-local with zone
    ['::ffff:0:127.0.0.1', '::ffff:0:7f00:1'],
    ['::FFFF:0:7F00:1', '::ffff:0:7f00:1'],
    ['::127.0.0.1', '::127.0.0.1'],
    ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['FD00:0:0::3', 'fd00::3'],
    ['fe80::1%eth0', 'fe80::1%eth0'],
    ['FE80::0001%eth0', 'fe80::1%eth0'],
    ['::1%lo', '::1%lo'],
    // not addresses
    [undefined, undefined],
    ['', undefined],
    ['127.000.000.001', undefined],
    ['0127.0.0.1', undefined],
    ['127.1', undefined],
    ['2130706433', undefined],
    ['0x7f.0.0.1', undefined],
    [' 127.0.0.1', undefined],
    ['127.0.0.1 ', undefined],
    ['127.0.0.1%eth0', undefined],
    ['::ffff:', undefined],
    ['::ffff:127.0.0.256', undefined],
    ['::ffff:127.0.0.1:80', undefined],
    ['[::1]', undefined],
    ['fe80::1%', undefined],
    ['localhost', undefined],
    ['127.0.0.1.evil.example', undefined],
    ['unknown', undefined],
  ];
  for (const [text, expected] of cases) assert.equal(canonicalIp(text), expected, JSON.stringify(text));
});

test('isLoopbackIp: 127.0.0.0/8 and ::1 in every spelling; translated, compatible and garbage are not', () => {
  const loopback = [
    '127.0.0.1',
    '127.255.255.254',
    '::1',
    '0:0:0:0:0:0:0:1',
    '::1%lo',
    '::ffff:127.0.0.1',
    '::FFFF:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:7f12:3456',
    '0:0:0:0:0:ffff:7f00:1',
  ];
  const notLoopback = [
    undefined,
    '',
    '0.0.0.0',
    '::',
    '128.0.0.1',
    '126.255.255.255',
    '198.18.0.2',
    '::ffff:198.18.0.2',
    '::ffff:0:127.0.0.1',
    '::ffff:0:7f00:1',
    '::127.0.0.1',
    '::7f00:1',
    '64:ff9b::127.0.0.1',
    '::2',
    'fe80::1%lo',
    '127.000.000.001',
    '127.1',
    '127.0.0.1.evil.example',
    '127.evil',
    ' 127.0.0.1',
    'localhost',
    'unknown',
  ];
  for (const text of loopback) assert.equal(isLoopbackIp(text), true, JSON.stringify(text));
  for (const text of notLoopback) assert.equal(isLoopbackIp(text), false, JSON.stringify(text));
});

test('what real sockets report: a dual-stack :: listener sees IPv4 clients as ::ffff:a.b.c.d', async () => {
  const seen: string[] = [];
  const server = createServer((socket: Socket) => {
    seen.push(socket.remoteAddress ?? '');
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '::', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    for (const host of ['127.0.0.1', '::1']) {
      await new Promise<void>((resolve, reject) =>
        netConnect(port, host)
          .on('close', () => resolve())
          .on('error', reject),
      );
    }
  } finally {
    server.close();
  }
  assert.deepEqual(seen, ['::ffff:127.0.0.1', '::1']);
  assert.deepEqual(seen.map(canonicalIp), ['127.0.0.1', '::1']);
  assert.ok(seen.every(isLoopbackIp));
});
