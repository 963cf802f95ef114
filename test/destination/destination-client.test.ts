// The proxy's destination client against the real service over mTLS (HTTP/2): an answer fetched
// once, then served from the cache synchronously; a table change reaching the cache through the
// long poll (the TTL is far away); an unreachable service, or one with the wrong SPIFFE ID, turning
// into "unknown" within the lookup bound, counted, and skipped for a while instead of waited on.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { createRegistry, type Registry } from '../../src/metrics/index.ts';
import { createProxyLog, loadCredentialFiles } from '../../src/proxy/index.ts';
import { createDestinationClient } from '../../src/proxy/outbound/destination-client.ts';
import { createTestPki, metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { createMeshTls, type MeshTls } from '../../src/tls/index.ts';
import { startService, tableFileIn, writeTable } from './destination-fixture.ts';

const EMOJI = 'spiffe://cluster.local/ns/demo/sa/emoji';
const EMOJI_V2 = 'spiffe://cluster.local/ns/demo/sa/emoji-v2';
const table = (id: string) => `destinations:\n  - address: 198.18.0.3\n    serverId: ${id}\n`;

let dir: string;
let tableFile: string;
let meshTls: MeshTls;
let service: Awaited<ReturnType<typeof startService>>;
let silent: Server;
const held: Socket[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-destination-client-'));
  const pki = await createTestPki(join(dir, 'pki'));
  meshTls = createMeshTls(await loadCredentialFiles(await pki.workload('web'), systemClock), systemClock);
  tableFile = tableFileIn(dir);
  await writeTable(tableFile, table(EMOJI));
  service = await startService(
    await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' }),
    {
      tableFile,
    },
  );
  // Accepts TCP and never says a word: a hung service.
  silent = createServer((socket) => held.push(socket)).listen(0, '127.0.0.1');
  await new Promise((resolve) => silent.once('listening', resolve));
});

after(async () => {
  for (const socket of held) socket.destroy();
  silent?.close();
  await service?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function client(url: string, options: { serverId?: string; lookupTimeoutMs?: number } = {}) {
  const registry: Registry = createRegistry();
  const logs: string[] = [];
  const resolver = createDestinationClient({
    url,
    meshTls: () => meshTls,
    clock: systemClock,
    log: createProxyLog((line) => logs.push(line), systemClock.now),
    registry,
    ttlMs: 10 * 60_000,
    lookupTimeoutMs: options.lookupTimeoutMs ?? 5_000,
    ...(options.serverId ? { serverId: options.serverId } : {}),
  });
  const lookups = async (result: string) =>
    metricValue(await registry.metrics(), 'mutual_outbound_destination_lookups_total', { result });
  return { resolver, logs, lookups };
}

test('fetched once, then cached; a change arrives through the long poll', async () => {
  const { resolver, lookups } = client(service.apiUrl);
  try {
    const first = resolver.resolve('198.18.0.3', 8080);
    assert.ok(first instanceof Promise, 'the first lookup asks the service');
    assert.deepEqual(await first, { serverId: EMOJI, host: '198.18.0.3', port: 8080 });
    assert.deepEqual(resolver.resolve('198.18.0.3', 8080), {
      serverId: EMOJI,
      host: '198.18.0.3',
      port: 8080,
    });
    assert.equal(await lookups('answered'), 1);
    assert.equal(await lookups('cached'), 1);
    assert.equal(await resolver.resolve('198.18.0.9', 80), undefined, 'unknown to the service: not meshed');

    await waitUntil(
      async () => metricValue(await serviceMetrics(), 'mutual_destination_watches_open') >= 1,
      'watch',
    );
    await writeTable(tableFile, table(EMOJI_V2));
    await waitUntil(async () => {
      const answer = resolver.resolve('198.18.0.3', 8080);
      return !(answer instanceof Promise) && answer?.serverId === EMOJI_V2;
    }, 'the cached answer updated by the watch');
    assert.equal(await lookups('answered'), 2, 'no new lookup: the watch kept the cache fresh');
  } finally {
    resolver.close();
    await writeTable(tableFile, table(EMOJI));
  }
});

test('a hung service: unknown within the bound, counted, then skipped without waiting', async () => {
  const address = silent.address() as { port: number };
  const { resolver, logs, lookups } = client(`https://127.0.0.1:${address.port}`, { lookupTimeoutMs: 300 });
  try {
    assert.equal(await resolver.resolve('198.18.0.3', 8080), undefined);
    const again = resolver.resolve('198.18.0.3', 8080);
    assert.equal(again instanceof Promise, false, 'within the retry window nobody waits');
    assert.equal(again, undefined);
    assert.equal(await lookups('unavailable'), 2);
    assert.match(logs.join(''), /MUTUAL_DESTINATION_UNAVAILABLE.*no answer within 300 ms/);
  } finally {
    resolver.close();
  }
});

test('a service that is not the expected SPIFFE ID is not believed', async () => {
  const { resolver, logs, lookups } = client(service.apiUrl, {
    serverId: 'spiffe://cluster.local/ns/demo/sa/mallory',
  });
  try {
    assert.equal(await resolver.resolve('198.18.0.3', 8080), undefined);
    assert.equal(await lookups('unavailable'), 1);
    assert.match(
      logs.join(''),
      /MUTUAL_DESTINATION_UNAVAILABLE.*server is not spiffe:\/\/cluster.local\/ns\/demo\/sa\/mallory/,
    );
  } finally {
    resolver.close();
  }
});

test("a port the service calls opaque comes back opaque, so the outbound carries it without waiting for the app's first bytes", async () => {
  await writeTable(
    tableFile,
    `destinations:\n  - address: 198.18.0.7\n    serverId: ${EMOJI}\n    ports: [8080, { port: 7000, protocol: opaque }]\n`,
  );
  // A fresh client per try: the service picks the table file up on its own schedule.
  const lookup = async (port: number) => {
    const { resolver } = client(service.apiUrl);
    try {
      return await resolver.resolve('198.18.0.7', port);
    } finally {
      resolver.close();
    }
  };
  try {
    await waitUntil(async () => (await lookup(8080)) !== undefined, 'the service knows 198.18.0.7');
    assert.deepEqual(await lookup(7000), { serverId: EMOJI, host: '198.18.0.7', port: 7000, opaque: true });
    assert.deepEqual(await lookup(8080), { serverId: EMOJI, host: '198.18.0.7', port: 8080 });
  } finally {
    await writeTable(tableFile, table(EMOJI));
  }
});

async function serviceMetrics(): Promise<string> {
  return (await fetch(`${service.adminUrl}/metrics`)).text();
}
