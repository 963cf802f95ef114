// The per-address limit of failed authentications is set with --auth-failure-burst and
// --auth-failure-limit (real process): with a burst of 3 and one token back every 4 s, the fourth
// bad token gets 429 with a Retry-After of seconds, a good token from that address waits too and
// gets in after it. Bad values (0, negative, not a number) stop the command with each flag named.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import {
  createCa,
  type IdentityServiceProcess,
  mintJoinToken,
  runMutual,
  startIdentityService,
} from './run-mutual.ts';

const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
let dir: string;
let bundlePem: string;
let service: IdentityServiceProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-auth-failure-flags-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), [
    ...['--auth-failure-burst', '3', '--auth-failure-limit', '0.25'],
  ]);
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function certify(token: string): Promise<{ status: number; json: any; retryAfter?: string }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const body = JSON.stringify({ token, csr: await createCsr({ privateKey, spiffeId: WEB }) });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path: '/v1/certify',
        method: 'POST',
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
        response.on('end', () => {
          const retryAfter = response.headers['retry-after'];
          resolve({
            status: response.statusCode!,
            json: JSON.parse(text),
            ...(retryAfter === undefined ? {} : { retryAfter: String(retryAfter) }),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('a burst of 3 bad tokens, then 429 with Retry-After for every request until a token is back', async () => {
  const good = await mintJoinToken(join(dir, 'state'), 'demo', 'web');
  const [header, payload, signature] = good.split('.');
  const forged = `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
  for (let i = 1; i <= 3; i++) {
    const refused = await certify(forged);
    assert.equal(refused.status, 401, `bad token ${i} is checked`);
    assert.equal(refused.json.error.code, 'MUTUAL_IDENTITY_TOKEN_INVALID');
  }
  // With the default (20, then 5 a second) the fourth would be checked and get 401.
  const limited = await certify(forged);
  assert.equal(limited.status, 429, JSON.stringify(limited.json));
  assert.equal(limited.json.error.code, 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED');
  // One token back every 4 s: the wait is seconds, more than the default's 1.
  const waitS = Number(limited.retryAfter);
  assert.ok(Number.isInteger(waitS) && waitS >= 2 && waitS <= 4, `Retry-After ${limited.retryAfter}`);
  const blocked = await certify(good);
  assert.equal(blocked.status, 429, 'a good token from the address waits too');
  await new Promise((resolve) => setTimeout(resolve, Number(blocked.retryAfter) * 1000 + 100));
  assert.equal((await certify(good)).status, 200);
});

test('bad --auth-failure-burst and --auth-failure-limit values stop the command, each named', async () => {
  const serve = (...flags: string[]) =>
    runMutual([
      ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, 'bad-state')],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...flags],
    ]);
  for (const [flags, message] of [
    [
      ['--auth-failure-burst', '0'],
      /--auth-failure-burst "0" must be a whole number of requests, at least 1/,
    ],
    [['--auth-failure-burst', '-3'], /--auth-failure-burst "-3" must be a whole number/],
    [['--auth-failure-burst', '2.5'], /--auth-failure-burst "2\.5" must be a whole number/],
    [
      ['--auth-failure-limit', '0'],
      /--auth-failure-limit "0" must be a positive number of requests per second/,
    ],
    [['--auth-failure-limit', '-1'], /--auth-failure-limit "-1" must be a positive number/],
    [['--auth-failure-limit', 'abc'], /--auth-failure-limit "abc" must be a positive number/],
    [['--auth-failure-limit', '1e-300'], /--auth-failure-limit "1e-300" must be a positive number/],
  ] as const) {
    const run = await serve(...flags);
    assert.equal(run.code, 2, `${flags.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /^error\[MUTUAL_CLI_USAGE\]: /, flags.join(' '));
    assert.match(run.stderr, message, flags.join(' '));
    assert.doesNotMatch(run.stdout, /listening/);
  }
  // Several bad values are named in one run.
  const both = await serve('--auth-failure-burst', 'x', '--auth-failure-limit', '0', '--rate-burst', '0');
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^error\[MUTUAL_CLI_USAGE\]: 3 flags of identity serve are wrong:\n/);
  for (const flag of ['--auth-failure-burst "x"', '--auth-failure-limit "0"', '--rate-burst "0"']) {
    assert.match(both.stderr, new RegExp(`\\n  - ${flag} must be`), flag);
  }
  const help = await runMutual(['identity', 'serve', '--help']);
  assert.match(help.stdout, /--auth-failure-limit <per-second>/);
  assert.match(help.stdout, /--auth-failure-burst <count>/);
});
