// `mutual destination serve` limits: --max-connections <count|auto> (as identity serve has it; a
// bad value stops the command), and at most 1000 concurrent HTTP/2 streams per connection. Before,
// the flag did not exist, and the server announced maxConcurrentStreams 2^32-1: one certificate
// holder could park any number of held long polls on one connection. Now a client that ignores
// the announced limit has its streams past 1000 reset (REFUSED_STREAM), while a Node client (the
// sidecar's, which queues past the limit) with 1100 long polls on one connection gets every answer.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { type ClientHttp2Session, connect as connectHttp2 } from 'node:http2';
import { connect as connectTcp, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { createDestinationFixture, type DestinationFixture } from './destination-daemon.ts';
import { type MutualDaemon, runMutual } from './run-mutual.ts';

const ADDRESS = '198.18.0.3:80';
let fixture: DestinationFixture;

before(async () => {
  fixture = await createDestinationFixture('mutual-destination-streams-');
});

after(() => fixture?.close());

const serveArgs = (extra: string[] = []) => fixture.serveArgs(extra);
const start = (extra: string[] = []) => fixture.start(extra);
const metrics = (daemon: MutualDaemon) => fixture.metrics(daemon);

async function tlsOptions() {
  return {
    cert: await readFile(fixture.web.certFile),
    key: await readFile(fixture.web.keyFile),
    ca: await readFile(fixture.web.bundleFile),
    checkServerIdentity: () => undefined,
  };
}

/** GET `path` on `session`: the status, or the stream error's code. */
function get(session: ClientHttp2Session, path: string): Promise<{ status: number | string; text: string }> {
  return new Promise((resolve) => {
    const stream = session.request({ ':path': path });
    let status: number | string = 0;
    let text = '';
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.on('error', (error: NodeJS.ErrnoException) => {
      status = error.code ?? 'error';
    });
    stream.on('close', () => resolve({ status, text }));
  });
}

test('--max-connections: a bad value stops the command with a usage error; auto and a count start', async () => {
  for (const bad of ['0', '-1', 'many', '1.5', '']) {
    const run = await runMutual(serveArgs(['--max-connections', bad]), { timeoutMs: 10_000 });
    assert.equal(run.code, 2, `${bad}: ${run.stderr}`);
    assert.match(
      run.stderr,
      new RegExp(
        `MUTUAL_CLI_USAGE.*--max-connections ${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')} must be a whole number of connections \\(or auto\\), at least 1`,
      ),
    );
  }
  const help = await runMutual(['destination', 'serve', '--help']);
  assert.match(help.stdout, /--max-connections <count\|auto>/);
  const auto = await start(['--max-connections', 'auto']);
  await auto.stop();
});

test('--max-connections 2: a third connection closes the oldest silent one', async () => {
  const daemon = await start(['--max-connections', '2']);
  const sockets: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < 3; i++) {
    const socket = connectTcp({ host: daemon.apiUrl.hostname, port: Number(daemon.apiUrl.port) });
    socket.on('error', () => {});
    socket.once('close', () => closed++);
    sockets.push(socket);
    await new Promise((resolve) => socket.once('connect', resolve));
  }
  try {
    await waitUntil(
      async () => metricValue(await metrics(daemon), 'mutual_destination_connections_shed_total') >= 1,
      'a connection shed at the limit of 2',
    );
    await waitUntil(async () => closed >= 1, 'the oldest silent connection closed');
    assert.equal(closed, 1);
  } finally {
    for (const socket of sockets) socket.destroy();
    await daemon.stop();
  }
});

// HTTP/2 frames by hand: a client that sends its requests whatever the server announced.
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK: GET https, :authority and :path as literals without indexing (names from the static table). */
function getHeaders(authority: string, path: string): Buffer {
  const literal = (index: number, value: string) => {
    const bytes = Buffer.from(value);
    assert.ok(bytes.length < 127);
    return Buffer.concat([Buffer.from([index, bytes.length]), bytes]);
  };
  return Buffer.concat([Buffer.from([0x82, 0x87]), literal(1, authority), literal(4, path)]);
}

test('past 1000 streams on one connection, new ones are refused; a sidecar with 1100 long polls still gets every answer', async () => {
  const daemon = await start();
  const origin = daemon.apiUrl.origin;
  const options = await tlsOptions();
  const sidecar = connectHttp2(origin, options);
  sidecar.on('error', () => {});
  let raw: TLSSocket | undefined;
  try {
    const first = await get(sidecar, `/v1/destinations/${ADDRESS}`);
    assert.equal(first.status, 200, first.text);
    const version = (JSON.parse(first.text) as { version: string }).version;
    const held = (wait: string) => `/v1/destinations/${ADDRESS}?wait=${wait}&version=${version}`;

    // The flood: 1100 held long polls on one connection, sent without waiting for anything.
    raw = connectTls({
      ...options,
      host: daemon.apiUrl.hostname,
      port: Number(daemon.apiUrl.port),
      ALPNProtocols: ['h2'],
    });
    raw.on('error', () => {});
    await new Promise((resolve) => raw!.once('secureConnect', resolve));
    assert.equal(raw.alpnProtocol, 'h2');
    const resets = new Map<number, number>();
    let buffered = Buffer.alloc(0);
    raw.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const type = buffered[3]!;
        const flags = buffered[4]!;
        const payload = buffered.subarray(9, 9 + length);
        // Acknowledge the server's SETTINGS, as a conforming client does (then ignore them).
        if (type === 0x4 && (flags & 0x1) === 0) raw!.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
        if (type === 0x3) {
          const code = payload.readUInt32BE(0);
          resets.set(code, (resets.get(code) ?? 0) + 1);
        }
        buffered = buffered.subarray(9 + length);
      }
    });
    const frames: Buffer[] = [
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      frame(0x4, 0, 0, Buffer.alloc(0)),
    ];
    const authority = `${daemon.apiUrl.hostname}:${daemon.apiUrl.port}`;
    for (let i = 0; i < 1100; i++)
      frames.push(frame(0x1, 0x5, 1 + 2 * i, getHeaders(authority, held('50s'))));
    raw.write(Buffer.concat(frames));
    const REFUSED_STREAM = 0x7;
    await waitUntil(async () => (resets.get(REFUSED_STREAM) ?? 0) >= 100, '100 streams refused');
    assert.deepEqual([...resets], [[REFUSED_STREAM, 100]]);
    await waitUntil(
      async () => metricValue(await metrics(daemon), 'mutual_destination_watches_open') === 1000,
      '1000 long polls held for the flooding connection',
    );

    // A sidecar with many destinations: 1100 long polls at once on its one connection, all answered.
    const polls = await Promise.all(Array.from({ length: 1100 }, () => get(sidecar, held('1s'))));
    const statuses = new Map<number | string, number>();
    for (const poll of polls) statuses.set(poll.status, (statuses.get(poll.status) ?? 0) + 1);
    assert.deepEqual([...statuses], [[304, 1100]]);
    const again = await get(sidecar, `/v1/destinations/${ADDRESS}`);
    assert.equal(again.status, 200, again.text);
  } finally {
    raw?.destroy();
    sidecar.destroy();
    await daemon.stop();
  }
});
