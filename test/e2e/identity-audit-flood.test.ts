// Refusals a client can cause in a loop are sampled in the audit log, as failed handshakes are. A
// client with no token at all wrote one audit line per request with invalid JSON or the wrong
// content type, and one per 429 once its address was penalised for bad tokens: 5,000 requests with
// invalid JSON from one client took 6 s and wrote 945 KB to STATE/identity/audit.log, which is
// never rotated, and a full disk stops all issuance. Now the first of each kind is audited at once
// with its client and the rest are counted in one line every 10 s; the metrics count each. Every
// issuance, and every token or CSR refused after its check, keeps its own line.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import { metricValue } from '../../src/testing/mesh-pki.ts';
import { createCa, type IdentityServiceProcess, mintJoinToken, startIdentityService } from './run-mutual.ts';

const id = (sa: string) => `spiffe://cluster.local/ns/demo/sa/${sa}`;
let dir: string;
let bundlePem: string;
let service: IdentityServiceProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-audit-flood-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** POSTs `body` `count` times over 8 kept-alive connections from `localAddress`; the statuses. */
async function postMany(
  count: number,
  body: string | (() => Promise<string>),
  localAddress: string,
  contentType = 'application/json',
): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8, localAddress });
  const statuses: number[] = [];
  const one = async () => {
    const text = typeof body === 'string' ? body : await body();
    return new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: service.apiUrl.hostname,
          port: service.apiUrl.port,
          path: '/v1/certify',
          method: 'POST',
          agent,
          ca: bundlePem,
          checkServerIdentity: () => undefined,
          headers: { 'content-type': contentType },
        },
        (response) => {
          statuses.push(response.statusCode!);
          response.resume();
          response.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(text);
    });
  };
  let started = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (started++ < count) await one();
    }),
  );
  agent.destroy();
  return statuses;
}

async function csrBody(token: string, spiffeId: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return JSON.stringify({ token, csr: await createCsr({ privateKey, spiffeId }) });
}

async function auditEntries(): Promise<any[]> {
  const text = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

/** The counts of every summary line written so far, added up by kind. */
async function summedCounts(): Promise<Map<string, number>> {
  const sums = new Map<string, number>();
  for (const entry of await auditEntries()) {
    if (!/more refused requests in the last 10 s/.test(entry.message ?? '')) continue;
    for (const [kind, count] of Object.entries(entry.counts as Record<string, number>)) {
      sums.set(kind, (sums.get(kind) ?? 0) + count);
    }
  }
  return sums;
}

const sumOf = (counts: Map<string, number>, pattern: RegExp) =>
  [...counts].filter(([kind]) => pattern.test(kind)).reduce((sum, [, count]) => sum + count, 0);

test('a flood of requests anyone can send writes one audit line per kind and a count; issuances keep theirs', async () => {
  const good = await mintJoinToken(join(dir, 'state'), 'demo', 'web');
  const [header, payload, signature] = good.split('.');
  const forged = `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;

  // No token at all: bad JSON and the wrong content type, 300 each from 127.0.0.5.
  const badJson = await postMany(300, '{"token":', '127.0.0.5');
  const wrongType = await postMany(300, '{}', '127.0.0.5', 'text/plain');
  assert.deepEqual(new Set(badJson), new Set([400]));
  assert.deepEqual(new Set(wrongType), new Set([415]));
  // Bad tokens from 127.0.0.6: the first are verified (401), then the address waits (429).
  const badTokens = await postMany(300, () => csrBody(forged, id('web')), '127.0.0.6');
  const verified = badTokens.filter((status) => status === 401).length;
  const penalised = badTokens.filter((status) => status === 429).length;
  assert.equal(verified + penalised, 300);
  assert.ok(penalised > 200, `${penalised} answered 429`);
  // A workload asking too often: 20 issued (the burst), the rest 429 for its identity.
  const tooOften = await postMany(60, () => csrBody(good, id('web')), '127.0.0.7');
  const issued = tooOften.filter((status) => status === 200).length;
  const rateLimited = tooOften.filter((status) => status === 429).length;
  assert.ok(issued >= 20 && issued + rateLimited === 60, JSON.stringify(tooOften));

  const entries = await auditEntries();
  const refusedFrom = (address: string, reason: string) =>
    entries.filter((entry) => entry.reason === reason && entry.requester.startsWith(`${address}:`)).length;
  // One line for each kind of request that no token stands behind...
  assert.equal(refusedFrom('127.0.0.5', 'MUTUAL_IDENTITY_REQUEST_INVALID'), 2);
  assert.equal(refusedFrom('127.0.0.6', 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED'), 1);
  assert.equal(refusedFrom('127.0.0.7', 'MUTUAL_IDENTITY_RATE_LIMITED'), 1);
  // ...while every token refused after its check and every issuance keeps its own line.
  assert.equal(refusedFrom('127.0.0.6', 'MUTUAL_IDENTITY_TOKEN_INVALID'), verified);
  const issuances = entries.filter(
    (entry) => entry.result === 'issued' && entry.requester.startsWith('127.0.0.7:'),
  );
  assert.equal(issuances.length, issued);

  // A summary every 10 s counts the rest, by kind and client (two, if the flood took over 10 s).
  const isAllCounted = async () => {
    const counts = await summedCounts();
    return (
      sumOf(counts, /^MUTUAL_IDENTITY_REQUEST_INVALID /) === 598 &&
      sumOf(counts, /^MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED from 127\.0\.0\.6$/) === penalised - 1 &&
      sumOf(counts, /^MUTUAL_IDENTITY_RATE_LIMITED for spiffe:\/\/cluster\.local\/ns\/demo\/sa\/web$/) ===
        rateLimited - 1
    );
  };
  for (let waitedMs = 0; !(await isAllCounted()); waitedMs += 200) {
    assert.ok(
      waitedMs < 30_000,
      `no summary counts them all: ${JSON.stringify([...(await summedCounts())])}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.ok((await auditEntries()).length < 20 + verified + issued, `${(await auditEntries()).length} lines`);

  // The metrics count every refusal.
  const metrics = await (await fetch(new URL('/metrics', service.adminUrl))).text();
  const refused = (reason: string) =>
    metricValue(metrics, 'mutual_identity_certificates_refused_total', { reason });
  assert.equal(refused('MUTUAL_IDENTITY_REQUEST_INVALID'), 600);
  assert.equal(refused('MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED'), penalised);
  assert.equal(refused('MUTUAL_IDENTITY_RATE_LIMITED'), rateLimited);
});
