// Failed authentications are limited per client address, before any token is verified: a flood
// of bad tokens from one address gets 429 after a burst of 20 (then one token back every 2 s:
// the default of 5 a second gives one back every 200 ms, less than a request can take on a
// loaded machine, so checks that an address is still penalised would race it), while
// other addresses are served. Every request from a penalised address waits, a good token too:
// telling them apart would take the verification being saved. Successful certifications cost
// nothing. The sidecar's client waits for the Retry-After it is given. Clients speak from
// different loopback addresses (127.0.0.2, .3, ...) so each test has its own bucket.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { createCsr } from '../../src/pki/index.ts';
import { createWorkloadIdentity, type WorkloadEvent } from '../../src/workload/index.ts';
import { createCa, type IdentityServiceProcess, mintJoinToken, startIdentityService } from './run-mutual.ts';

const BURST = 20;
const PER_SECOND = 0.5;
let dir: string;
let bundlePem: string;
let service: IdentityServiceProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-auth-failures-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), [
    ...['--auth-failure-burst', String(BURST), '--auth-failure-limit', String(PER_SECOND)],
  ]);
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  json: any;
  retryAfter: string | undefined;
}

const id = (sa: string) => `spiffe://cluster.local/ns/demo/sa/${sa}`;

async function bodyFor(token: string, spiffeId: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return JSON.stringify({ token, csr: await createCsr({ privateKey, spiffeId }) });
}

/** POST /v1/certify from `localAddress` (a loopback address of the test's own). */
function post(body: string, localAddress: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path: '/v1/certify',
        method: 'POST',
        localAddress,
        agent: false,
        ca: bundlePem,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            json: JSON.parse(text),
            retryAfter: response.headers['retry-after'] as string | undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A join token for sa/`sa` with its signature changed: it must be verified to be refused. */
function forged(token: string): string {
  const [header, payload, signature] = token.split('.');
  return `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
}

async function flood(token: string, spiffeId: string, count: number, localAddress: string) {
  const bodies = await Promise.all(Array.from({ length: count }, () => bodyFor(token, spiffeId)));
  const startedMs = performance.now();
  const answers = await Promise.all(bodies.map((body) => post(body, localAddress)));
  return { answers, elapsedS: (performance.now() - startedMs) / 1000 };
}

test('a flood of bad tokens from one address gets 429 after the burst; other addresses are served', async () => {
  const good = await mintJoinToken(join(dir, 'state'), 'demo', 'flooded');
  const { answers, elapsedS } = await flood(forged(good), id('flooded'), 100, '127.0.0.2');
  const verified = answers.filter((answer) => answer.status === 401);
  const limited = answers.filter((answer) => answer.status === 429);
  assert.equal(verified.length + limited.length, 100, JSON.stringify(answers.map((a) => a.status)));
  // The burst, and what came back while the flood was answered: no more tokens were verified.
  assert.ok(verified.length >= BURST, `${verified.length} verified`);
  assert.ok(verified.length <= BURST + Math.ceil(elapsedS * PER_SECOND), `${verified.length} verified`);
  for (const answer of verified) assert.equal(answer.json.error.code, 'MUTUAL_IDENTITY_TOKEN_INVALID');
  for (const answer of limited) {
    assert.equal(answer.json.error.code, 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED');
    assert.match(answer.json.error.message, /too many requests with invalid tokens came from 127\.0\.0\.2/);
    assert.match(answer.json.error.hint, /fix its token file/);
    assert.match(answer.retryAfter ?? '', /^[1-9]\d*$/);
  }

  // While penalised, a good token from the same address waits too (it is not looked at)...
  const blocked = await post(await bodyFor(good, id('flooded')), '127.0.0.2');
  assert.equal(blocked.status, 429);
  assert.equal(blocked.json.error.code, 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED');
  // ...while another address is served at once...
  const other = await mintJoinToken(join(dir, 'state'), 'demo', 'neighbour');
  assert.equal((await post(await bodyFor(other, id('neighbour')), '127.0.0.3')).status, 200);
  // ...and the good token gets in once Retry-After has passed.
  await new Promise((resolve) => setTimeout(resolve, Number(blocked.retryAfter) * 1000 + 100));
  const after = await post(await bodyFor(good, id('flooded')), '127.0.0.2');
  assert.equal(after.status, 200, JSON.stringify(after.json));

  // The first is audited with its client (the rest are counted in a summary line every 10 s:
  // identity-audit-flood), and every one is counted by reason.
  const audit = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  const refusals = audit
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.reason === 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED');
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0].result, 'refused');
  assert.match(refusals[0].requester, /^127\.0\.0\.2:\d+$/);
  const metrics = await (await fetch(new URL('/metrics', service.adminUrl))).text();
  assert.match(
    metrics,
    new RegExp(
      `mutual_identity_certificates_refused_total\\{reason="MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED"\\} ${limited.length + 1}\\b`,
    ),
  );
});

test('successful certifications never count against the address', async () => {
  // Two identities, so the per-identity limit (20 at once) is not what is tested.
  const tokens = await Promise.all(['b1', 'b2'].map((sa) => mintJoinToken(join(dir, 'state'), 'demo', sa)));
  for (let i = 0; i < 30; i++) {
    const sa = i % 2 ? 'b2' : 'b1';
    const answer = await post(await bodyFor(tokens[i % 2]!, id(sa)), '127.0.0.4');
    assert.equal(answer.status, 200, `certification ${i + 1}: ${JSON.stringify(answer.json)}`);
  }
  // The whole burst of failures is still there after 30 successes.
  const bad = await bodyFor(forged(tokens[0]!), id('b1'));
  const statuses: number[] = [];
  for (let i = 0; i < 60 && !statuses.includes(429); i++)
    statuses.push((await post(bad, '127.0.0.4')).status);
  assert.deepEqual(statuses.slice(0, BURST), Array(BURST).fill(401));
  assert.equal(statuses.at(-1), 429);
});

test("the sidecar's identity client waits for Retry-After instead of its own shorter backoff", async () => {
  // The client speaks from 127.0.0.1: flood that address first.
  const token = await mintJoinToken(join(dir, 'state'), 'demo', 'sidecar');
  const { answers } = await flood(forged(token), id('sidecar'), 40, '127.0.0.1');
  assert.ok(answers.some((answer) => answer.status === 429));
  const events: WorkloadEvent[] = [];
  const workload = createWorkloadIdentity({
    spiffeId: id('sidecar'),
    identityUrl: service.apiUrl.href.replace(/\/$/, ''),
    identityServerId: 'spiffe://cluster.local/ns/mutual-system/sa/identity',
    readToken: async () => token,
    initialBundlePem: bundlePem,
    clock: systemClock,
    // A backoff far shorter than the Retry-After (2 s): before, it retried after 5-10 ms.
    retryBaseMs: 10,
    retryMaxMs: 30_000,
    bundleWaitS: 0,
    onEvent: (event) => events.push(event),
  });
  try {
    workload.start();
    await workload.ready();
    const failed = events.filter((event) => event.kind === 'renewal-failed');
    assert.ok(failed.length >= 1, JSON.stringify(events));
    assert.equal(failed[0]!.code, 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED');
    assert.ok(failed[0]!.retryInMs >= 1000, `retried in ${failed[0]!.retryInMs} ms`);
    assert.ok(failed.length <= 2, `${failed.length} failed tries: Retry-After was not honoured`);
    assert.equal(events.at(-1)!.kind, 'issued');
  } finally {
    workload.close();
  }
});
