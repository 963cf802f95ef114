// The workload's trust-bundle watch against a real identity-service process: a long poll is held
// for its whole wait, even when the wait is longer than the client's request timeout, and a new
// root written to the CA directory answers the poll in flight. (Seen in a soak: with the default
// 30 s wait and 10 s timeout every poll was cut after 10 s, so each workload reconnected with a
// full handshake three times as often and learned of a new anchor only after its backoff.)
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createIdentityClient } from '../../src/workload/index.ts';
import { createCa, type IdentityServiceProcess, startIdentityService } from './run-mutual.ts';

const IDENTITY_ID = 'spiffe://cluster.local/ns/mutual-system/sa/identity';
let dir: string | undefined;
let service: IdentityServiceProcess | undefined;

after(async () => {
  await service?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a bundle long poll longer than the request timeout is held, and answered by a new root', async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-bundle-poll-'));
  await createCa(join(dir, 'ca'));
  await createCa(join(dir, 'next'));
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
  const bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  const client = createIdentityClient({
    url: service.apiUrl.href,
    serverId: IDENTITY_ID,
    trustBundlePem: () => bundlePem,
    timeoutMs: 1000,
  });
  const first = await client.fetchBundle(undefined, 0);
  assert.ok(first?.etag);

  // Unchanged for the whole 3 s wait: a 304 at its end, not a timeout after 1 s.
  let startedMs = Date.now();
  assert.equal(await client.fetchBundle(first.etag, 3), undefined);
  assert.ok(Date.now() - startedMs >= 2500, `answered after ${Date.now() - startedMs} ms`);

  // A second root added while a 20 s poll waits: the poll answers with both roots at once.
  startedMs = Date.now();
  const polled = client.fetchBundle(first.etag, 20);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const nextRoot = await readFile(join(dir, 'next', 'trust-anchor.crt'), 'utf8');
  await writeFile(join(dir, 'ca', '.bundle.pem.tmp'), `${bundlePem.trimEnd()}\n${nextRoot}`);
  await rename(join(dir, 'ca', '.bundle.pem.tmp'), join(dir, 'ca', 'bundle.pem'));
  const update = await polled;
  assert.ok(update, 'the poll answered with a bundle');
  assert.notEqual(update.etag, first.etag);
  assert.equal(update.pem.match(/BEGIN CERTIFICATE/g)?.length, 2);
  assert.ok(Date.now() - startedMs < 10_000, `answered after ${Date.now() - startedMs} ms`);
});
