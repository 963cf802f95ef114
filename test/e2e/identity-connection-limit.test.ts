// The identity service's API keeps at most --max-connections open in all (by default 3/4 of its file
// descriptor limit): at the cap a new connection is kept and the oldest one doing nothing useful is
// closed, a bundle long poll held silent among them (its client polls again), never a request being
// answered. Before, the per-address cap alone let clients on a few addresses (20 x 1024 idle
// connections or long polls) take every descriptor: new connections were then accepted and closed
// at once by libuv, so no workload could certify or fetch the bundle and the admin port died too.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { ClientRequest } from 'node:http';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  createCa,
  holdSilentConnections,
  type IdentityServiceProcess,
  mintJoinToken,
  runMutual,
  startIdentityService,
  startMutualDaemon,
} from './run-mutual.ts';

let dir: string;
let bundlePem: string;
const services: IdentityServiceProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-connection-limit-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
});

after(async () => {
  for (const service of services) await service.stop();
  await rm(dir, { recursive: true, force: true });
});

/** `mutual identity serve` started under `prlimit --nofile=N:N`, as a real process. */
async function startUnderFileLimit(name: string, nofile: number): Promise<IdentityServiceProcess> {
  const service = await startMutualDaemon(
    [
      ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, name)],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      // A minute to finish a handshake: no connection below is closed by a deadline.
      ...['--client-timeout', '60s'],
    ],
    'identity service',
    { fileLimit: nofile },
  );
  services.push(service);
  return service;
}

/** `perAddress` TCP connections from each of `addresses` that never send a byte, all connected. */
const holdIdle = (service: IdentityServiceProcess, addresses: string[], perAddress: number) =>
  holdSilentConnections(service.apiUrl, addresses, perAddress);

/** A request from `localAddress`: its status and body, or the socket error's code. */
function callFrom(
  service: IdentityServiceProcess,
  localAddress: string,
  path: string,
  options: { body?: string; headers?: Record<string, string>; agent?: Agent } = {},
): { request: ClientRequest; answer: Promise<number | string> } {
  let req: ClientRequest | undefined;
  const answer = new Promise<number | string>((resolve) => {
    req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path,
        method: options.body === undefined ? 'GET' : 'POST',
        localAddress,
        ...(options.agent ? { agent: options.agent } : { agent: false, ...trustOptions() }),
        headers: { 'content-type': 'application/json', ...options.headers },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode!));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end(options.body);
  });
  return { request: req!, answer };
}

async function certifyFrom(
  service: IdentityServiceProcess,
  localAddress: string,
  token: string,
  agent?: Agent,
) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await createCsr({ privateKey, spiffeId: 'spiffe://cluster.local/ns/demo/sa/web' });
  const body = JSON.stringify({ token, csr });
  return callFrom(service, localAddress, '/v1/certify', { body, ...(agent ? { agent } : {}) }).answer;
}

/** The service's CA; its certificate names 127.0.0.1 by no DNS name, so no host name is checked. */
const trustOptions = () => ({ ca: bundlePem, checkServerIdentity: () => undefined });

/** One kept-alive connection, as a sidecar's client keeps it (TLS options on the agent, so it is reused). */
const keptAlive = () => new Agent({ keepAlive: true, maxSockets: 1, ...trustOptions() });

async function metrics(service: IdentityServiceProcess): Promise<string> {
  return (await fetch(new URL('/metrics', service.adminUrl))).text();
}

async function auditOf(stateDir: string, reason: string) {
  return (await readFile(join(stateDir, 'identity', 'audit.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.reason === reason);
}

test('under a file limit of 256, 300 idle connections from five addresses leave room: a sixth address certifies and gets the bundle, the admin port answers', async () => {
  const service = await startUnderFileLimit('fd-limit', 256);
  const token = await mintJoinToken(join(dir, 'fd-limit'), 'demo', 'web');
  const addresses = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24', '127.0.0.25'];
  const flood = await holdIdle(service, addresses, 60);
  try {
    // 3/4 of 256 stay open; the oldest 108 are closed as the newer ones come, without a deadline.
    await waitUntil(async () => flood.closed() === 108, `108 connections closed (${flood.closed()} were)`);
    // A workload on a sixth address, over one kept-alive connection, which took the oldest one's place.
    const workload = keptAlive();
    assert.equal(await certifyFrom(service, '127.0.0.26', token, workload), 200);
    assert.equal(await callFrom(service, '127.0.0.26', '/v1/bundle', { agent: workload }).answer, 200);
    workload.destroy();
    assert.equal(flood.closed(), 109);

    const text = await metrics(service);
    assert.equal(metricValue(text, 'mutual_identity_connections_open', { state: 'handshake' }), 191, text);
    assert.equal(
      metricValue(text, 'mutual_identity_certificates_refused_total', {
        reason: 'MUTUAL_IDENTITY_CONNECTIONS_SHED',
      }),
      109,
    );
    const audit = await auditOf(join(dir, 'fd-limit'), 'MUTUAL_IDENTITY_CONNECTIONS_SHED');
    assert.equal(audit.length, 1, 'the first closing is audited, the rest counted');
    assert.match(audit[0].requester, /^127\.0\.0\.2[1-5]:\d+$/);
    assert.match(
      audit[0].message,
      /192 connections open, its limit \(--max-connections\).*closed the oldest one in its TLS handshake, from 127\.0\.0\.2[1-5]:\d+/,
    );
  } finally {
    flood.release();
  }
});

test('at --max-connections, the oldest bundle long poll held silent is closed for a new connection, an idle one before it', async () => {
  const service = await startIdentityService(join(dir, 'ca'), join(dir, 'polls'), [
    ...['--max-connections', '30', '--client-timeout', '60s'],
  ]);
  services.push(service);
  const token = await mintJoinToken(join(dir, 'polls'), 'demo', 'web');
  const held = async () =>
    metricValue(await metrics(service), 'mutual_identity_connections_open', { state: 'held' });
  const etag = await new Promise<string>((resolve, reject) => {
    const req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path: '/v1/bundle',
        agent: false,
        ...trustOptions(),
      },
      (response) => {
        response.resume();
        resolve(String(response.headers.etag));
      },
    );
    req.on('error', reject);
    req.end();
  });
  // 30 long polls from three addresses, one after another, each held before the next.
  const polls: Array<{ request: ClientRequest; answer: Promise<number | string>; isSettled: boolean }> = [];
  try {
    for (let i = 0; i < 30; i++) {
      const poll = callFrom(service, `127.0.0.${31 + (i % 3)}`, '/v1/bundle?wait=60', {
        headers: { 'if-none-match': etag },
      });
      const entry = { ...poll, isSettled: false };
      poll.answer.then(() => {
        entry.isSettled = true;
      });
      polls.push(entry);
      await waitUntil(async () => (await held()) === i + 1, `long poll ${i + 1} held`);
    }
    // A workload on another address certifies and gets the bundle: the oldest poll makes room.
    const workload = keptAlive();
    assert.equal(await certifyFrom(service, '127.0.0.40', token, workload), 200);
    const bundleCall = callFrom(service, '127.0.0.40', '/v1/bundle', { agent: workload });
    assert.equal(await bundleCall.answer, 200);
    const workloadSocket = bundleCall.request.socket;
    assert.ok(workloadSocket && !workloadSocket.destroyed, 'the workload keeps its connection');
    assert.match(String(await polls[0]!.answer), /^ECONNRESET$|socket hang up/);
    assert.equal(await held(), 29);
    // The next newcomer closes the workload's idle connection before any other poll.
    assert.equal(await callFrom(service, '127.0.0.41', '/v1/bundle').answer, 200);
    if (!workloadSocket.destroyed) await once(workloadSocket, 'close');
    assert.deepEqual(
      polls.slice(1).filter((poll) => poll.isSettled),
      [],
      'the newer polls are still held',
    );
    assert.equal(await held(), 29);
    workload.destroy();
    const audit = await auditOf(join(dir, 'polls'), 'MUTUAL_IDENTITY_CONNECTIONS_SHED');
    assert.deepEqual(
      audit.map((entry) => entry.message.replace(/from [\d.]+:\d+/, 'from ADDRESS')),
      [
        'the identity service had 30 connections open, its limit (--max-connections), so it closed the oldest one holding a long poll, from ADDRESS, to accept a new one',
        'the identity service had 30 connections open, its limit (--max-connections), so it closed the oldest one idle between requests, from ADDRESS, to accept a new one',
      ],
      'the first of each kind is audited',
    );
    assert.match(audit[0].requester, /^127\.0\.0\.31:\d+$/);
    assert.match(audit[1].requester, /^127\.0\.0\.40:\d+$/);
    const text = await metrics(service);
    assert.equal(
      metricValue(text, 'mutual_identity_certificates_refused_total', {
        reason: 'MUTUAL_IDENTITY_CONNECTIONS_SHED',
      }),
      2,
    );
  } finally {
    for (const poll of polls) poll.request.destroy();
  }
});

test('--max-connections takes a whole number of at least 1, or auto', async () => {
  for (const value of ['0', '-1', '1.5', 'many']) {
    const run = await runMutual([
      ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, 'bad-flag')],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      ...['--max-connections', value],
    ]);
    assert.equal(run.code, 2, `${value}: ${run.stderr}`);
    assert.match(run.stderr, /--max-connections "/);
  }
});
