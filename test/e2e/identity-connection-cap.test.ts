// One client address holds at most 1024 connections to the identity service's API port
// (--max-connections-per-address; IPv6 clients by /64): past that its new connections are closed
// at once, audited (sampled) and counted, while other addresses are served. Before, a client with
// no token held as many as it opened: 20,000 bundle long polls (one request a minute each) took
// every file descriptor (ulimit 20,000) and 1.4 GB, and no workload could certify, fetch the
// bundle or even reach the admin port until they ended; raw TCP connections that never send
// a byte did the same for the 10 s handshake deadline each.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  createCa,
  type IdentityServiceProcess,
  mintJoinToken,
  runMutual,
  startIdentityService,
} from './run-mutual.ts';

const LIMIT = 1024;
let dir: string;
let bundlePem: string;
let service: IdentityServiceProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-connection-cap-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  // A minute to finish a handshake: no connection below is closed by a deadline.
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), ['--client-timeout', '60s']);
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Opens `count` TCP connections from `localAddress` that never send a byte. */
async function holdConnections(count: number, localAddress: string) {
  const sockets: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from(
        { length: Math.min(100, count - i) },
        () =>
          new Promise<void>((resolve, reject) => {
            const socket = connect({
              host: service.apiUrl.hostname,
              port: Number(service.apiUrl.port),
              localAddress,
            });
            sockets.push(socket);
            socket.once('connect', () => resolve());
            socket.once('error', () => {});
            socket.once('close', () => {
              closed++;
              resolve();
            });
            socket.setTimeout(30_000, () => reject(new Error('no connection')));
          }),
      ),
    );
  }
  return {
    closed: () => closed,
    release: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** A request from `localAddress`: the status, or the socket error's code. */
function callFrom(localAddress: string, path: string, body?: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        localAddress,
        agent: false,
        ca: bundlePem,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode!));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end(body);
  });
}

async function certifyFrom(localAddress: string, token: string): Promise<number | string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await createCsr({ privateKey, spiffeId: 'spiffe://cluster.local/ns/demo/sa/web' });
  return callFrom(localAddress, '/v1/certify', JSON.stringify({ token, csr }));
}

test('one address holding 1024 connections gets no more; other addresses are served', async () => {
  const token = await mintJoinToken(join(dir, 'state'), 'demo', 'web');
  const flood = await holdConnections(LIMIT + 50, '127.0.0.8');
  // The 50 past the limit are closed at once, without waiting for any deadline.
  await waitUntil(async () => flood.closed() === 50, `50 connections closed (${flood.closed()} were)`);
  // The address gets nothing more while it holds its 1024...
  assert.match(String(await certifyFrom('127.0.0.8', token)), /^ECONNRESET$|^EPIPE$/);
  // ...while another address certifies and fetches the bundle.
  assert.equal(await certifyFrom('127.0.0.9', token), 200);
  assert.equal(await callFrom('127.0.0.9', '/v1/bundle'), 200);

  const audit = (await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.reason === 'MUTUAL_IDENTITY_CONNECTIONS_LIMITED');
  assert.equal(audit.length, 1, 'the first refusal is audited, the rest counted');
  assert.match(audit[0].requester, /^127\.0\.0\.8:\d+$/);
  assert.match(audit[0].message, /127\.0\.0\.8 has 1024 connections open.*--max-connections-per-address/);
  const metrics = await (await fetch(new URL('/metrics', service.adminUrl))).text();
  assert.equal(
    metricValue(metrics, 'mutual_identity_certificates_refused_total', {
      reason: 'MUTUAL_IDENTITY_CONNECTIONS_LIMITED',
    }),
    51,
  );

  // Once its connections close, the address is served again.
  flood.release();
  let status: number | string = 0;
  await waitUntil(async () => {
    status = await certifyFrom('127.0.0.8', token);
    return status === 200;
  }, `a certificate for 127.0.0.8 after its connections closed (last answer ${status})`);
});

test('--max-connections-per-address takes a whole number of at least 1', async () => {
  for (const value of ['0', '-1', '1.5', 'many']) {
    const run = await runMutual([
      ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, 'bad-flag')],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      ...['--max-connections-per-address', value],
    ]);
    assert.equal(run.code, 2, `${value}: ${run.stderr}`);
    assert.match(run.stderr, /--max-connections-per-address/);
  }
});
