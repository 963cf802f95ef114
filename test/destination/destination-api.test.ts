// The destination API over real mTLS, fed by a watched table file: answers for addresses and names,
// 400s that say what was wrong, a long poll woken by a table change, a bad table refused while the
// last good one keeps answering, and clients without a certificate or from another CA turned away.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DestinationService } from '../../src/destination/index.ts';
import { createTestPki, metricValue, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { get, startService, tableFileIn, writeTable } from './destination-fixture.ts';

const EMOJI = 'spiffe://cluster.local/ns/demo/sa/emoji';
const DB = 'spiffe://cluster.local/ns/demo/sa/db';
const TABLE = `destinations:
  - address: 198.18.0.3
    serverId: ${EMOJI}
    names: [emoji.demo.svc.cluster.local]
  - address: 198.18.0.4
    serverId: ${DB}
    ports: [{ port: 5432, protocol: opaque }, 8080]
  - address: "::FFFF:C612:5"
    serverId: ${DB}
  - address: "FD00:0:0::5"
    serverId: ${DB}
`;

let dir: string;
let table: string;
let service: DestinationService & { logs: string[] };
let web: WorkloadFiles;
let caFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-destination-api-'));
  const pki = await createTestPki(join(dir, 'pki'));
  caFile = pki.bundleFile;
  web = await pki.workload('web');
  const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
  table = tableFileIn(dir);
  await writeTable(table, TABLE);
  service = await startService(own, { tableFile: table });
});

after(async () => {
  await service?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ask = (target: string) => get(`${service.apiUrl}/v1/destinations/${target}`, { client: web, caFile });

test('a meshed address, a name, an opaque port, a port the table leaves out and an unknown address', async () => {
  const pod = await ask('198.18.0.3:8080');
  assert.equal(pod.status, 200);
  assert.deepEqual(
    { ...pod.body, version: typeof pod.body.version },
    {
      destination: '198.18.0.3:8080',
      meshed: true,
      serverId: EMOJI,
      protocol: 'detect',
      kind: 'static',
      name: '198.18.0.3',
      source: 'file',
      version: 'string',
    },
  );
  const byName = await ask('emoji.demo.svc.cluster.local:80');
  assert.equal(byName.body.serverId, EMOJI);
  assert.equal((await ask('198.18.0.4:5432')).body.protocol, 'opaque');
  const otherPort = await ask('198.18.0.4:9999');
  assert.deepEqual([otherPort.body.meshed, otherPort.body.reason], [false, 'unknown-port']);
  const unknown = await ask('10.1.2.3:80');
  assert.deepEqual([unknown.status, unknown.body.meshed, unknown.body.reason], [200, false, 'unknown']);
  const ipv6 = await ask('[::ffff:198.18.0.3]:8080');
  assert.equal(ipv6.body.destination, '198.18.0.3:8080');
});

test('addresses are compared in one spelling: a table or a query may write them any way', async () => {
  // A sidecar asks for the address its socket reports: 198.18.0.5 and fd00::5 as inet_ntop writes them.
  for (const target of ['198.18.0.5:80', '[fd00::5]:80', '[::FFFF:C612:5]:80', '[FD00::0:5]:80']) {
    const answer = await ask(target);
    assert.deepEqual([answer.status, answer.body.meshed, answer.body.serverId], [200, true, DB], target);
  }
  assert.equal((await ask('[::ffff:c612:3]:8080')).body.destination, '198.18.0.3:8080');
  // IPv4-translated (::ffff:0:a.b.c.d) is an IPv6 address of its own, not 198.18.0.3.
  const translated = await ask('[::ffff:0:c612:3]:8080');
  assert.deepEqual([translated.body.destination, translated.body.meshed], ['[::ffff:0:c612:3]:8080', false]);
});

test('bad requests get a 400 naming what was wrong', async () => {
  for (const [target, fragment] of [
    ['198.18.0.3', 'is not a destination'],
    ['198.18.0.3:0', 'port from 1 to 65535'],
    ['', 'names no destination'],
    ['under_score.example:80', 'neither an IP address nor a DNS name'],
    ['[not-v6]:80', 'not an IPv6 address'],
    ['198.18.0.3:80?wait=soon&version=x', 'is not a duration'],
  ] as const) {
    const answer = await ask(target);
    assert.equal(answer.status, 400, target);
    assert.equal(answer.body.error.code, 'MUTUAL_DESTINATION_REQUEST_INVALID');
    assert.match(answer.body.error.message, new RegExp(fragment.replace(/[()[\]]/g, '\\$&')), target);
    assert.ok(answer.body.error.hint);
  }
  const missing = await get(`${service.apiUrl}/v2/other`, { client: web, caFile });
  assert.equal(missing.status, 404);
});

test('a long poll returns when the answer changes; an unchanged one ends in 304', async () => {
  const first = await ask('198.18.0.7:80');
  assert.equal(first.body.meshed, false);
  const waiting = ask(`198.18.0.7:80?wait=30s&version=${first.body.version}`);
  // The watch must be registered before the table changes, or the change comes with no one waiting.
  for (let i = 0; i < 100 && metricValue(await metrics(), 'mutual_destination_watches_open') < 1; i++)
    await new Promise((resolve) => setTimeout(resolve, 50));
  await writeTable(
    table,
    `${TABLE}  - address: 198.18.0.7\n    serverId: spiffe://cluster.local/ns/demo/sa/new\n`,
  );
  const changed = await waiting;
  assert.equal(changed.status, 200);
  assert.equal(changed.body.serverId, 'spiffe://cluster.local/ns/demo/sa/new');
  assert.notEqual(changed.body.version, first.body.version);

  const same = await ask(`198.18.0.7:80?wait=1s&version=${changed.body.version}`);
  assert.equal(same.status, 304);
});

test('a broken table is refused and the last good one keeps answering', async () => {
  await writeTable(table, 'destinations:\n  - address: not-an-ip\n    serverId: web\n');
  for (
    let i = 0;
    i < 100 &&
    metricValue(await metrics(), 'mutual_destination_table_reloads_total', { result: 'refused' }) < 1;
    i++
  )
    await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(
    metricValue(await metrics(), 'mutual_destination_table_reloads_total', { result: 'refused' }),
    1,
  );
  assert.match(service.logs.join(''), /destinations\[0\]\.address: must be an IPv4 or IPv6 address/);
  assert.match(service.logs.join(''), /destinations\[0\]\.serverId: must be a workload SPIFFE ID/);
  assert.equal((await ask('198.18.0.3:8080')).body.serverId, EMOJI);
});

test('a client without a certificate is refused', async () => {
  await assert.rejects(get(`${service.apiUrl}/v1/destinations/198.18.0.3:80`, { caFile }), (error: Error) => {
    assert.match(
      `${(error as NodeJS.ErrnoException).code} ${error.message}`,
      /certificate required|ECONNRESET|socket hang up/i,
    );
    return true;
  });
});

test('a client with an SVID from another CA is refused', async () => {
  const other = await createTestPki(join(dir, 'other-pki'));
  const stranger = await other.workload('web');
  await assert.rejects(
    get(`${service.apiUrl}/v1/destinations/198.18.0.3:80`, { client: stranger, caFile }),
    (error: Error) => {
      assert.match(
        `${(error as NodeJS.ErrnoException).code} ${error.message}`,
        /unknown ca|ECONNRESET|socket hang up/i,
      );
      return true;
    },
  );
  const text = await metrics();
  assert.ok(metricValue(text, 'mutual_destination_clients_refused_total') >= 1, text);
});

async function metrics(): Promise<string> {
  return (await fetch(`${service.adminUrl}/metrics`)).text();
}
