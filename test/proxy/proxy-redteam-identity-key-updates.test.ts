// TLS 1.3 KeyUpdate floods against a real `mutual identity serve`, sent by the system's OpenSSL
// (libssl through ctypes, test/proxy/fixtures/tls_key_updates.py) by a client holding no
// certificate and no token: anyone who reaches the API port completes a handshake. Asking for new
// keys 50,000 times a second on a held bundle long poll, one such client kept the service at 90%
// CPU with /live answering in 2-3 s, until `mutual up` killed it for failed liveness; the answers
// it buffered grew without bound. A client past 32 KeyUpdates is now closed and audited as
// MUTUAL_IDENTITY_KEY_UPDATE_FLOOD; one renewing its keys a few times is served, and so are
// others meanwhile.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { createCa, type IdentityServiceProcess, startIdentityService } from '../e2e/run-mutual.ts';
import { keyUpdateClientMissing, keyUpdatesThenRequest } from './key-update-client.ts';

const skip = keyUpdateClientMissing;

let dir: string;
let service: IdentityServiceProcess;
let bundlePem: string;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-redteam-identity-key-updates-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
});

after(async () => {
  await service?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The fixture's client with no certificate: `count` KeyUpdates, then GET /v1/bundle. */
const keyUpdatesThenBundle = (count: number) =>
  keyUpdatesThenRequest({ port: service.apiUrl.port, count, path: '/v1/bundle' });

/** GET /v1/bundle with Node's client, trusting the CA: the status. */
function getBundle(): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = { ca: bundlePem, checkServerIdentity: () => undefined };
    const call = request(new URL('/v1/bundle', service.apiUrl), options, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    call.on('error', reject);
    call.end();
  });
}

const refused = async () =>
  metricValue(
    await (await fetch(new URL('/metrics', service.adminUrl))).text(),
    'mutual_identity_certificates_refused_total',
    { reason: 'MUTUAL_IDENTITY_KEY_UPDATE_FLOOD' },
  );

test('a client renewing its keys 20 times gets the bundle; one asking 20,000 times is closed and audited, while others are served', {
  skip,
}, async () => {
  const few = await keyUpdatesThenBundle(20);
  assert.equal(few.sent, 20);
  assert.equal(few.answer, 'HTTP/1.1 200 OK');
  assert.equal(await refused(), 0);

  const floods = [1, 2].map(() => keyUpdatesThenBundle(20_000));
  assert.equal(await getBundle(), 200);
  for (const flood of await Promise.all(floods)) {
    assert.equal(flood.handshake, true);
    assert.equal(flood.answer, '', JSON.stringify(flood));
  }
  assert.equal(await refused(), 2);
  const audited = async () =>
    (await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { reason?: string; message?: string; requester?: string })
      .filter((entry) => entry.reason === 'MUTUAL_IDENTITY_KEY_UPDATE_FLOOD');
  await waitUntil(async () => (await audited()).length > 0, 'the audit line');
  const [entry] = await audited();
  assert.match(entry!.message!, /more than 32 TLS KeyUpdates/);
  assert.match(entry!.requester!, /^127\.0\.0\.1:\d+$/);
  assert.equal(await getBundle(), 200);
});
