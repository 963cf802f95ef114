// A loop of failed TLS handshakes at a real `mutual identity serve` (openssl s_client with TLS 1.2,
// with only P-521, with only RSA signature algorithms; raw garbage; plain HTTP) no longer writes one
// audit line each: the first of each kind is audited at once with its client and a message naming
// what the client did, the rest are summed up in one line within 10 s, and the metrics count every
// one. Signing decisions and token refusals during the flood are still audited one by one.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { createCa, type IdentityServiceProcess, mintJoinToken, startIdentityService } from './run-mutual.ts';

const opensslMissing =
  spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'openssl is not installed';

let dir: string;
let service: IdentityServiceProcess;
let bundlePem: string;
let token: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-identity-handshake-audit-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
  token = await mintJoinToken(join(dir, 'state'), 'demo', 'web');
});

after(async () => {
  await service?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const port = () => Number(service.apiUrl.port);

async function auditEntries(): Promise<any[]> {
  const text = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

const refusedMetric = async (reason: string) =>
  metricValue(
    await (await fetch(new URL('/metrics', service.adminUrl))).text(),
    'mutual_identity_certificates_refused_total',
    { reason },
  );

function sClient(args: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port()}`, ...args], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    child.on('close', () => resolve());
  });
}

function raw(bytes: Buffer | string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port(), '127.0.0.1', () => socket.write(bytes));
    socket.on('data', () => {});
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

function certify(body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: port(),
        path: '/v1/certify',
        method: 'POST',
        ca: bundlePem,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode!));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `count` of `attempt` with at most 10 at a time. */
async function repeat(count: number, attempt: () => Promise<void>): Promise<void> {
  for (let done = 0; done < count; done += 10)
    await Promise.all(Array.from({ length: Math.min(10, count - done) }, attempt));
}

test('100 failed handshakes: one audit line per kind naming what the client did, then one summary counting the rest; metrics count all; certify decisions each audited', {
  skip: opensslMissing,
}, async () => {
  const [invalidBefore, plainBefore, linesBefore] = await Promise.all([
    refusedMetric('MUTUAL_IDENTITY_REQUEST_INVALID'),
    refusedMetric('MUTUAL_IDENTITY_PLAIN_HTTP'),
    (await auditEntries().catch(() => [])).length,
  ]);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await createCsr({ privateKey, spiffeId: 'spiffe://cluster.local/ns/demo/sa/web' });
  const started = Date.now();
  const [, , , , , issued, forged] = await Promise.all([
    repeat(25, () => sClient(['-tls1_2'])),
    repeat(20, () => sClient(['-tls1_3', '-groups', 'P-521'])),
    repeat(15, () => sClient(['-tls1_3', '-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256'])),
    repeat(25, () => raw(Buffer.alloc(300, 0xab))),
    repeat(15, () => raw('GET /v1/bundle HTTP/1.1\r\nHost: identity\r\n\r\n')),
    certify(JSON.stringify({ token, csr })),
    certify(JSON.stringify({ token: `${token.slice(0, -4)}AAAA`, csr })),
  ]);
  assert.equal(issued, 200);
  assert.equal(forged, 401);
  // Every one counted.
  await waitUntil(
    async () => (await refusedMetric('MUTUAL_IDENTITY_REQUEST_INVALID')) - invalidBefore === 85,
    '85 failed TLS handshakes counted',
  );
  assert.equal((await refusedMetric('MUTUAL_IDENTITY_PLAIN_HTTP')) - plainBefore, 15);

  const written = async () => (await auditEntries()).slice(linesBefore);
  const handshakeLines = (await written()).filter((entry) =>
    ['MUTUAL_IDENTITY_REQUEST_INVALID', 'MUTUAL_IDENTITY_PLAIN_HTTP'].includes(entry.reason),
  );
  const byMessage = (pattern: RegExp) => handshakeLines.filter((entry) => pattern.test(entry.message));
  // Before: 85 lines all saying "the identity service speaks only TLS 1.3", and 15 plain HTTP lines.
  if (Date.now() - started < 9_000) {
    assert.equal(handshakeLines.length, 5, JSON.stringify(handshakeLines, null, 1));
    assert.equal(
      byMessage(/ERR_SSL_UNSUPPORTED_PROTOCOL\): the client offered only TLS 1\.2 or older/).length,
      1,
    );
    assert.equal(
      byMessage(
        /ERR_SSL_NO_SUITABLE_KEY_SHARE\): the client offered none of the key-exchange groups .*X25519, P-256, P-384/,
      ).length,
      1,
    );
    assert.equal(byMessage(/ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM\): .*no signature algorithm/).length, 1);
    assert.equal(byMessage(/ERR_SSL_WRONG_VERSION_NUMBER\): .*not TLS/).length, 1);
    assert.equal(byMessage(/^plain HTTP was sent/).length, 1);
    for (const entry of handshakeLines) assert.match(entry.requester, /^127\.0\.0\.1:\d+$/);
  }
  // The signing decision and the token refusal each have their own line.
  const decisions = (await written()).filter(
    (entry) => entry.result === 'issued' || entry.reason === 'MUTUAL_IDENTITY_TOKEN_INVALID',
  );
  assert.deepEqual(decisions.map((entry) => entry.result).sort(), ['issued', 'refused']);

  // Within 10 s, one summary counts the 95 not audited one by one.
  const summed = async () => {
    const counts: Record<string, number> = {};
    for (const entry of await written())
      for (const [kind, count] of Object.entries((entry.counts ?? {}) as Record<string, number>))
        counts[kind] = (counts[kind] ?? 0) + count;
    return counts;
  };
  for (let i = 0; i < 150 && Object.values(await summed()).reduce((a, b) => a + b, 0) < 95; i++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  const summaries = (await written()).filter((entry) => entry.counts);
  assert.deepEqual(await summed(), {
    ERR_SSL_UNSUPPORTED_PROTOCOL: 24,
    ERR_SSL_NO_SUITABLE_KEY_SHARE: 19,
    ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM: 14,
    ERR_SSL_WRONG_VERSION_NUMBER: 24,
    plain_http: 14,
  });
  assert.match(
    summaries[0].message,
    /^95 more failed TLS handshakes in the last 10 s, audited only in this count: /,
  );
  assert.ok((await written()).length <= 9, `${(await written()).length} audit lines for 102 requests`);
});
