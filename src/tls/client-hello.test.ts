import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { CLIENT_HELLO_MAX_BYTES, type ClientHelloScan, scanClientHello } from './client-hello.ts';

/** The ClientHello Node's TLS client sends, as a real socket carries it. */
async function realClientHello(options: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const accepted = once(server, 'connection');
    const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', ...options });
    client.on('error', () => {});
    const [socket] = (await accepted) as [Socket];
    let bytes = Buffer.alloc(0);
    // The record header says how long it is: read until it is all here.
    while (bytes.length < 5 || bytes.length < 5 + bytes.readUInt16BE(3)) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      bytes = Buffer.concat([bytes, chunk]);
    }
    client.destroy();
    socket.destroy();
    return bytes;
  } finally {
    server.close();
  }
}

/** The same handshake message split over records of `sizes` bytes each (the last takes the rest). */
function resplit(record: Buffer, sizes: number[]): Buffer {
  let body = record.subarray(5);
  const out: Buffer[] = [];
  for (const size of [...sizes, body.length]) {
    if (body.length === 0) break;
    const part = body.subarray(0, size);
    body = body.subarray(part.length);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    out.push(header, part);
  }
  return Buffer.concat(out);
}

/** Every prefix is `incomplete` until one decides, and every longer one decides the same. */
function assertPrefixesAgree(bytes: Buffer, expected: ClientHelloScan) {
  let i = 0;
  while (i < bytes.length && scanClientHello(bytes.subarray(0, i)).kind === 'incomplete') i++;
  for (; i <= bytes.length; i++)
    assert.deepEqual(scanClientHello(bytes.subarray(0, i)), expected, `prefix ${i}`);
}

/** A hand-built ClientHello around `extensions` (already encoded), in one record. */
function clientHello(extensions: Buffer | undefined, { sessionId = 32, suites = 2 } = {}): Buffer {
  const parts = [
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([sessionId]),
    Buffer.alloc(sessionId),
    u16(suites),
    Buffer.alloc(suites, 1),
    Buffer.from([1, 0]),
  ];
  if (extensions) parts.push(u16(extensions.length), extensions);
  const body = Buffer.concat(parts);
  const message = Buffer.concat([Buffer.from([1, 0]), u16(body.length), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]);
}

/** A ClientHello whose extensions' length field says `length`, whatever follows. */
function withExtensionsLength(length: number, extensions: Buffer): Buffer {
  const bytes = clientHello(extensions);
  // Record header 5, handshake header 4, version 2, random 32, session id 1 + 32, suites 2 + 2, compression 2.
  bytes.writeUInt16BE(length, 82);
  return bytes;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body]);
}

function sni(...names: [number, string][]): Buffer {
  const list = Buffer.concat(
    names.map(([type, name]) =>
      Buffer.concat([Buffer.from([type]), u16(name.length), Buffer.from(name, 'latin1')]),
    ),
  );
  return extension(0, Buffer.concat([u16(list.length), list]));
}

const hello = (serverName: string | undefined): ClientHelloScan => ({ kind: 'client-hello', serverName });

test('a real ClientHello: its server name, from the first prefix that holds it', async () => {
  const bytes = await realClientHello({ servername: 'web.demo', ALPNProtocols: ['h2', 'http/1.1'] });
  assertPrefixesAgree(bytes, hello('web.demo'));
  // Decided before the record is complete: Node sends SNI ahead of its key shares.
  assert.equal(scanClientHello(bytes.subarray(0, bytes.length - 1)).kind, 'client-hello');
});

test('a real ClientHello to an IP names no server', async () => {
  assertPrefixesAgree(await realClientHello({}), hello(undefined));
});

test('a ClientHello split over records, even one byte each, reads the same', async () => {
  const bytes = await realClientHello({ servername: 'Web.Demo' });
  assertPrefixesAgree(resplit(bytes, [3, 40, 100]), hello('web.demo'));
  // Tiny records only cost work: past 16 of them the reader gives up.
  assert.equal(scanClientHello(resplit(bytes, Array(20).fill(1))).kind, 'unreadable');
});

const hostile: [string, Buffer, ClientHelloScan['kind']][] = [
  ['nothing yet', Buffer.alloc(0), 'incomplete'],
  ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'unreadable'],
  ['record version 2.0', Buffer.from([22, 2, 1, 0, 10]), 'unreadable'],
  ['record version 3.9', Buffer.from([22, 3, 9]), 'unreadable'],
  ['an empty record', Buffer.from([22, 3, 1, 0, 0]), 'unreadable'],
  ['a record longer than TLS allows', Buffer.from([22, 3, 1, 0xff, 0xff]), 'unreadable'],
  ['a ServerHello', Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0]), 'unreadable'],
  ['a ClientHello claiming 16 MiB', Buffer.from([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]), 'unreadable'],
  ['a session id longer than 32', clientHello(undefined, { sessionId: 33 }), 'unreadable'],
  ['an odd cipher suite list', clientHello(undefined, { suites: 3 }), 'unreadable'],
  ['no extensions (TLS 1.2)', clientHello(undefined), 'client-hello'],
  ['extensions longer than the message', withExtensionsLength(0xffff, sni([0, 'a.b'])), 'unreadable'],
  ['an extension longer than the extensions', clientHello(Buffer.from([0, 16, 0xff, 0xff])), 'unreadable'],
  [
    'a name longer than its list',
    clientHello(extension(0, Buffer.from([0, 3, 0, 0, 9, 0x61]))),
    'unreadable',
  ],
  ['a name with a NUL', clientHello(sni([0, 'web\0.demo'])), 'unreadable'],
  ['a name with a space', clientHello(sni([0, 'web demo'])), 'unreadable'],
  ['an empty name', clientHello(sni([0, ''])), 'unreadable'],
  ['a name of 256 bytes', clientHello(sni([0, 'a'.repeat(256)])), 'unreadable'],
  ['a name type other than host_name only', clientHello(sni([7, 'x'])), 'client-hello'],
];

for (const [name, bytes, kind] of hostile) {
  test(`scanClientHello: ${name} → ${kind}`, () => {
    assert.equal(scanClientHello(bytes).kind, kind);
  });
}

test('the name behind thousands of empty extensions is found; a ClientHello past the bound is not read', () => {
  const many = Buffer.concat([
    ...Array(3000).fill(extension(0xfa, Buffer.alloc(0))),
    sni([0, 'late.example']),
  ]);
  assert.deepEqual(scanClientHello(clientHello(many)), hello('late.example'));
  const padding = extension(21, Buffer.alloc(CLIENT_HELLO_MAX_BYTES));
  const huge = resplit(clientHello(Buffer.concat([padding, sni([0, 'x.y'])])), [16_000, 16_000]);
  assert.equal(scanClientHello(huge).kind, 'unreadable');
});

test('a second name after another type: the host_name is taken', () => {
  assert.deepEqual(scanClientHello(clientHello(sni([7, 'x'], [0, 'api.shop']))), hello('api.shop'));
});

test('mutated real ClientHellos never throw, and longer prefixes never undo a decision', async () => {
  const bytes = await realClientHello({ servername: 'web.demo', ALPNProtocols: ['h2'] });
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const mutated = Buffer.from(bytes);
    for (let k = 0; k < 1 + random(4); k++) mutated[random(mutated.length)] = random(256);
    const cut = mutated.subarray(0, random(mutated.length + 1));
    const whole = scanClientHello(mutated);
    const part = scanClientHello(cut);
    if (part.kind !== 'incomplete') assert.deepEqual(whole, part, `round ${round}`);
  }
});
