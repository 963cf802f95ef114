// A workload against a real identity-service process with 12-second certificates: it renews with
// a fresh key at 70% of the lifetime, keeps its certificate while the service is down for longer
// than a renewal interval, and recovers when the service returns.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { createWorkloadIdentity, type WorkloadEvent } from '../../src/workload/index.ts';
import { createCa, type IdentityServiceProcess, mintJoinToken, startIdentityService } from './run-mutual.ts';

const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
let dir: string;
let service: IdentityServiceProcess | undefined;

async function startService(listen: string): Promise<string> {
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), [
    ...['--listen', listen, '--lifetime', '12s', '--skew', '1s'],
  ]);
  return service.apiUrl.href.replace(/\/$/, '');
}

async function stopService() {
  await service?.stop();
}

after(async () => {
  await stopService();
  await rm(dir, { recursive: true, force: true });
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-renew-'));
  await createCa(join(dir, 'ca'));
});

/** A new identity service (12 s certificates) and web's workload identity against it, not started. */
async function webWorkload(onEvent: (event: WorkloadEvent) => void) {
  const url = await startService('127.0.0.1:0');
  await writeFile(join(dir, 'token'), await mintJoinToken(join(dir, 'state'), 'demo', 'web'));
  const workload = createWorkloadIdentity({
    spiffeId: WEB,
    identityUrl: url,
    identityServerId: 'spiffe://cluster.local/ns/mutual-system/sa/identity',
    readToken: () => readFile(join(dir, 'token'), 'utf8'),
    initialBundlePem: await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8'),
    clock: systemClock,
    retryBaseMs: 300,
    retryMaxMs: 1000,
    bundleWaitS: 0,
    onEvent,
  });
  return Object.assign(workload, { identityUrl: url });
}

test('renews with a fresh key, survives an identity-service outage, recovers', async () => {
  const events: WorkloadEvent[] = [];
  const waiters: Array<() => void> = [];
  const workload = await webWorkload((event) => {
    events.push(event);
    for (const wake of waiters.splice(0)) wake();
  });
  const url = workload.identityUrl;
  const nextEvent = async (kind: WorkloadEvent['kind'], after: number) => {
    while (!events.slice(after).some((event) => event.kind === kind)) {
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    return events.length;
  };
  try {
    workload.start();
    const first = await workload.ready();
    assert.equal(first.spiffeId, WEB);

    // Renewal at 70% of ~14 s: a new certificate with a new key.
    let seen = await nextEvent('issued', 1);
    const second = workload.current()!;
    assert.notEqual(second.privateKeyPem, first.privateKeyPem);
    assert.notEqual(second.certificateChainPem, first.certificateChainPem);
    assert.ok(second.notAfterMs > first.notAfterMs);

    // The service goes away for longer than a renewal interval: renewals fail, the certificate stays.
    await stopService();
    seen = await nextEvent('renewal-failed', seen);
    assert.equal(workload.current(), second);
    assert.equal(workload.lastError()?.code, 'MUTUAL_IDENTITY_UNAVAILABLE');

    // Back on the same address: the next retry succeeds.
    await startService(new URL(url).host);
    await nextEvent('issued', seen);
    const third = workload.current()!;
    assert.ok(third.notAfterMs > second.notAfterMs);
    assert.equal(workload.lastError(), undefined);
  } finally {
    workload.close();
  }
});

test('an identity service that accepts and never answers fails the renewal before the certificate expires', async () => {
  await stopService();
  const failures: { atMs: number; message: string }[] = [];
  let onFailure = () => {};
  const workload = await webWorkload((event) => {
    if (event.kind !== 'renewal-failed') return;
    failures.push({ atMs: Date.now(), message: event.message });
    onFailure();
  });
  const url = workload.identityUrl;
  // A partitioned or hung service: connections are accepted and nothing is ever sent back.
  const held: Socket[] = [];
  const silent = createServer((socket) => held.push(socket));
  try {
    workload.start();
    const first = await workload.ready();
    await stopService();
    await new Promise<void>((resolve) => silent.listen(Number(new URL(url).port), '127.0.0.1', resolve));
    await new Promise<void>((resolve) => {
      onFailure = resolve;
    });
    // With 10 s per attempt, the renewal at 70% of ~13 s (about 4 s left) failed only after the
    // certificate had expired; a third of the time left gives the first try 2 s.
    assert.ok(
      failures[0]!.atMs < first.notAfterMs,
      `first failure ${failures[0]!.atMs - first.notAfterMs} ms after the certificate expired`,
    );
    assert.match(failures[0]!.message, /no answer from .* within 2 s/);
    assert.equal(workload.current(), first, 'the certificate in hand is kept');
  } finally {
    workload.close();
    for (const socket of held) socket.destroy();
    silent.close();
  }
});
