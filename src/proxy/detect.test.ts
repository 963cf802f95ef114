import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { scanClientHello } from '../tls/index.ts';
import { classifyFirstBytes, peekClientHello, peekFirstBytes } from './detect.ts';

const cases: [string, string, ReturnType<typeof classifyFirstBytes>][] = [
  ['a request line', 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n', 'http1'],
  ['a method the list does not name', 'PROPFIND /x HTTP/1.1\r\nhost: a\r\n\r\n', 'http1'],
  ['a made-up method', 'FOO /x HTTP/1.1\r\n', 'http1'],
  ['a lower-case method', 'get /x HTTP/1.1\r\n', 'http1'],
  ['tabs for spaces', 'GET\t/x\tHTTP/1.1\r\n', 'http1'],
  ['empty lines before the request', '\r\n\r\nPROPFIND /x HTTP/1.1\r\n', 'http1'],
  ['one byte of a method, then a stall', 'G', 'http1'],
  ['half a request line, then a stall', 'PROPFIND /adm', 'http1'],
  ['a request line without its line end', 'PATCH /x HTTP/1.1', 'http1'],
  ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http2'],
  ['a TLS record', '\x16\x03\x01\x02\x00', 'tls'],
  ['text that cannot become a request line', 'ping over mTLS', 'opaque'],
  ['a first word that is no method, with no blank yet', 'tick0;tick1;', 'opaque'],
  ['a number where the target goes', 'full 0', 'opaque'],
  ['a complete line without an HTTP version', 'get foo\r\n', 'opaque'],
  ['RESP', '*1\r\n$4\r\nPING\r\n', 'opaque'],
  ['binary', '\x00\x00\x00\x08\x04\xd2\x16\x2f', 'opaque'],
];

for (const [name, bytes, expected] of cases) {
  test(`classifyFirstBytes: ${name} → ${expected}`, () => {
    assert.equal(classifyFirstBytes(Buffer.from(bytes, 'latin1')), expected);
  });
}

/** A connected pair of real sockets. */
async function socketPair(): Promise<{ client: Socket; server: Socket; close(): void }> {
  const listener = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection');
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  client.setNoDelay(true);
  const [server] = (await accepted) as [Socket];
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

test('peekFirstBytes waits past a first chunk that is only the start of a request line', async () => {
  const { client, server, close } = await socketPair();
  try {
    const peeked = peekFirstBytes(server, 60_000);
    const firstChunkRead = once(server, 'readable');
    client.write('G');
    await firstChunkRead;
    const rest = 'ET /admin HTTP/1.1\r\nx-mutual-client-id: forged\r\n\r\n';
    client.write(rest);
    const bytes = await peeked;
    assert.equal(bytes?.toString(), `G${rest}`);
    assert.equal(classifyFirstBytes(bytes), 'http1');
    // Put back whole: the HTTP parser reads the request from its first byte.
    assert.equal((server.read() as Buffer).toString(), `G${rest}`);
  } finally {
    close();
  }
});

test('peekFirstBytes decides at once on bytes that cannot start a request line', async () => {
  const { client, server, close } = await socketPair();
  try {
    const peeked = peekFirstBytes(server, 60_000);
    client.write('ping over mTLS');
    assert.equal((await peeked)?.toString(), 'ping over mTLS');
  } finally {
    close();
  }
});

test('peekClientHello waits for the rest of a ClientHello whose first segment ends before its name', async () => {
  const { client, server, close } = await socketPair();
  try {
    const hello = clientHelloNaming('web.demo');
    const peeked = peekFirstBytes(server, 60_000);
    client.write(hello.subarray(0, 20));
    const first = await peeked;
    assert.equal(classifyFirstBytes(first), 'tls');
    assert.equal(scanClientHello(first!).kind, 'incomplete');
    const scanned = peekClientHello(server, 60_000);
    client.write(hello.subarray(20));
    assert.deepEqual(await scanned, { kind: 'client-hello', serverName: 'web.demo' });
    // Put back whole: the TLS server or the app reads the ClientHello from its first byte.
    assert.deepEqual(server.read(), hello);
  } finally {
    close();
  }
});

test('peekClientHello gives up on a ClientHello that stalls', async () => {
  const { client, server, close } = await socketPair();
  try {
    client.write(clientHelloNaming('web.demo').subarray(0, 20));
    assert.deepEqual(await peekClientHello(server, 200), { kind: 'unreadable' });
  } finally {
    close();
  }
});

/** A minimal TLS 1.2-shaped ClientHello whose only extension names `host`. */
function clientHelloNaming(host: string): Buffer {
  const name = Buffer.from(host);
  const sni = Buffer.concat([
    Buffer.from([0, 0, 0, name.length + 5, 0, name.length + 3, 0, 0, name.length]),
    name,
  ]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 1),
    Buffer.from([0, 0, 2, 0x13, 0x01, 1, 0, 0, sni.length]),
    sni,
  ]);
  const message = Buffer.concat([Buffer.from([1, 0, 0, body.length]), body]);
  return Buffer.concat([Buffer.from([22, 3, 1, 0, message.length]), message]);
}
