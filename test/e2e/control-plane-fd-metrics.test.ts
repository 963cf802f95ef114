// The identity and destination services export process_open_fds and process_max_fds as the
// sidecar does: at the limit a Node server's new connections are closed unseen, and these gauges
// are how an operator sees it coming.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, metricValue } from '../../src/testing/mesh-pki.ts';
import { createCa, type MutualDaemon, startIdentityService, startMutualDaemon } from './run-mutual.ts';

let dir: string;
const daemons: MutualDaemon[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-fd-metrics-'));
});

after(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop()));
  await rm(dir, { recursive: true, force: true });
});

async function assertFdGauges(daemon: MutualDaemon, what: string) {
  const text = await (await fetch(new URL('/metrics', daemon.adminUrl))).text();
  const open = metricValue(text, 'process_open_fds');
  const max = metricValue(text, 'process_max_fds');
  assert.ok(open > 5, `${what}: process_open_fds ${open} (listeners, the event loop, stdio)`);
  assert.ok(max >= open, `${what}: process_max_fds ${max} under ${open} open`);
  assert.match(text, new RegExp(`# HELP process_open_fds File descriptors ${what} has open`));
}

test('the identity service exports its open and maximum file descriptors', async () => {
  await createCa(join(dir, 'ca'));
  const identity = await startIdentityService(join(dir, 'ca'), join(dir, 'identity-state'));
  daemons.push(identity);
  await assertFdGauges(identity, 'the identity service');
});

test('the destination service exports its open and maximum file descriptors', async () => {
  const pki = await createTestPki(join(dir, 'pki'));
  const own = await pki.workload('destination', { ns: 'mutual-system' });
  await writeFile(join(dir, 'table.yaml'), '');
  const destination = await startMutualDaemon(
    [
      ...['destination', 'serve', '--file', join(dir, 'table.yaml')],
      ...['--cert', own.certFile, '--key', own.keyFile, '--bundle', own.bundleFile],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ],
    'destination service',
  );
  daemons.push(destination);
  await assertFdGauges(destination, 'the destination service');
});
