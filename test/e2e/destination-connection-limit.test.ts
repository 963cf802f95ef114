// The destination service's API keeps at most --max-connections open in all (by default 3/4 of
// its file descriptor limit), as the identity service does (src/net's limit): at the cap a new
// connection is kept and the oldest one doing nothing useful is closed (a handshake never sent, a
// long poll held silent, whose sidecar polls again), never one being answered. Before, anyone who
// reached the port could take every descriptor (300 TCP connections that never send under a
// limit of 256, or sidecars holding long polls): new connections were accepted and closed at
// once by libuv, so no sidecar was answered.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { after, before, test } from 'node:test';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { createDestinationFixture, type DestinationFixture } from './destination-daemon.ts';
import { holdSilentConnections, type MutualDaemon, runMutual } from './run-mutual.ts';

let fixture: DestinationFixture;

before(async () => {
  fixture = await createDestinationFixture('mutual-destination-limit-');
});

after(() => fixture?.close());

/** `mutual destination serve` (under `prlimit --nofile=N:N` when given), as a real process. */
const startUnderFileLimit = (nofile?: number, extraArgs: string[] = []) =>
  fixture.start(extraArgs, nofile === undefined ? {} : { fileLimit: nofile });

/** `perAddress` TCP connections from each of `addresses` that never send a byte, all connected. */
const holdSilent = (daemon: MutualDaemon, addresses: string[], perAddress: number) =>
  holdSilentConnections(daemon.apiUrl, addresses, perAddress);

interface Call {
  /** The status, or the socket error's code. */
  readonly answer: Promise<number | string>;
  /** Resolves once the response headers came or the request failed. */
  readonly done: Promise<void>;
}

/** GET `path` over its own HTTPS/1.1 connection from `localAddress`, presenting web's SVID. */
async function getFrom(daemon: MutualDaemon, localAddress: string, path: string): Promise<Call> {
  const [ca, cert, key] = await Promise.all(
    [fixture.web.bundleFile, fixture.web.certFile, fixture.web.keyFile].map((file) => readFile(file, 'utf8')),
  );
  const answer = new Promise<number | string>((resolve) => {
    const req = request(
      {
        host: daemon.apiUrl.hostname,
        port: daemon.apiUrl.port,
        path,
        localAddress,
        ca,
        cert,
        key,
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode!));
        response.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
  return { answer, done: answer.then(() => {}) };
}

const metrics = (daemon: MutualDaemon) => fixture.metrics(daemon);

const lookup = '/v1/destinations/198.18.0.3:8080';

test('under a file limit of 256, 300 silent TCP connections from five addresses leave room: a sidecar on a sixth is answered', async () => {
  const daemon = await startUnderFileLimit(256);
  const flood = await holdSilent(
    daemon,
    ['127.0.0.31', '127.0.0.32', '127.0.0.33', '127.0.0.34', '127.0.0.35'],
    60,
  );
  try {
    // 3/4 of 256 stay open; the oldest 108 are closed as the newer ones come.
    await waitUntil(async () => flood.closed() === 108, `108 connections closed (${flood.closed()} were)`);
    assert.equal(await (await getFrom(daemon, '127.0.0.36', lookup)).answer, 200);
    const text = await metrics(daemon);
    assert.equal(
      metricValue(text, 'mutual_destination_connections_shed_total', { state: 'handshake' }),
      109,
      text,
    );
    // One line for the first, not one per connection.
    const lines = daemon
      .output()
      .split('\n')
      .filter((line) => line.includes('connection closed at the limit'));
    assert.equal(lines.length, 1, daemon.output());
  } finally {
    flood.release();
  }
});

test('under a file limit of 256, 250 long polls held by sidecars on five addresses leave room: a sidecar on a sixth is answered', async () => {
  const daemon = await startUnderFileLimit(256);
  const first = await getFrom(daemon, '127.0.0.40', lookup);
  assert.equal(await first.answer, 200);
  const version = await versionOf(daemon);
  const held: Call[] = [];
  for (const address of ['127.0.0.41', '127.0.0.42', '127.0.0.43', '127.0.0.44', '127.0.0.45'])
    for (let i = 0; i < 50; i++)
      held.push(await getFrom(daemon, address, `${lookup}?wait=60s&version=${version}`));
  // Each is held, or was closed to make room (its sidecar would poll again).
  await waitUntil(async () => {
    const text = await metrics(daemon);
    const shed = metricValue(text, 'mutual_destination_connections_shed_total');
    return shed + metricValue(text, 'mutual_destination_watches_open') >= 250;
  }, 'every long poll held or closed');
  assert.equal(await (await getFrom(daemon, '127.0.0.46', lookup)).answer, 200);
  const text = await metrics(daemon);
  assert.ok(metricValue(text, 'mutual_destination_connections_shed_total', { state: 'held' }) >= 1, text);
  assert.ok(metricValue(text, 'mutual_destination_connections_open') <= 192, text);
  for (const call of held) call.answer.catch(() => {});
});

test('one address keeps at most --max-connections-per-address open: past it new ones are closed before their handshake, and other addresses are served', async () => {
  const daemon = await startUnderFileLimit(undefined, ['--max-connections-per-address', '50']);
  const flood = await holdSilent(daemon, ['127.0.0.51'], 80);
  try {
    await waitUntil(async () => flood.closed() === 30, `30 connections closed (${flood.closed()} were)`);
    // The flooding address gets no more; a sidecar on another address is answered.
    assert.equal(await (await getFrom(daemon, '127.0.0.51', lookup)).answer, 'ECONNRESET');
    assert.equal(await (await getFrom(daemon, '127.0.0.52', lookup)).answer, 200);
    const text = await metrics(daemon);
    assert.equal(metricValue(text, 'mutual_destination_connections_limited_total'), 31, text);
    assert.equal(metricValue(text, 'mutual_destination_connections_shed_total'), 0, text);
    // One line for the first, not one per connection.
    const lines = daemon
      .output()
      .split('\n')
      .filter((line) => line.includes('too many from one address'));
    assert.equal(lines.length, 1, daemon.output());
    assert.match(lines[0]!, /127\.0\.0\.51 has 50 connections open to the destination service/);
  } finally {
    flood.release();
  }
});

test('--max-connections-per-address takes a whole number of at least 1', async () => {
  const refused = await runMutual(fixture.serveArgs(['--max-connections-per-address', '0']));
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /--max-connections-per-address "0" must be a whole number of connections, at least 1/,
  );
});

async function versionOf(daemon: MutualDaemon): Promise<string> {
  const [ca, cert, key] = await Promise.all(
    [fixture.web.bundleFile, fixture.web.certFile, fixture.web.keyFile].map((file) => readFile(file, 'utf8')),
  );
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: daemon.apiUrl.hostname,
        port: daemon.apiUrl.port,
        path: lookup,
        ca,
        cert,
        key,
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () => resolve(JSON.parse(text).version));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
