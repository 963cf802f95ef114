// The destination service's standard conditional GET, through curl presenting a mesh SVID: the
// ETag it sends, given back in If-None-Match (alone, weak, in a list), gets 304 for a destination
// and for a namespace's policies; with ?wait= the request is held until the answer changes, as
// ?version= is; another tag gets the answer. Before, only ?version= counted: curl got 200.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { DestinationService } from '../../src/destination/index.ts';
import { hasCommand } from '../../src/mesh/netns/commands.ts';
import { createTestPki, metricValue, type WorkloadFiles, waitUntil } from '../../src/testing/mesh-pki.ts';
import { startService, tableFileIn, writeTable } from './destination-fixture.ts';

const run = promisify(execFile);
const skip = hasCommand('curl') ? undefined : 'curl is not installed';
const TABLE = `destinations:
  - address: 198.18.0.3
    serverId: spiffe://cluster.local/ns/demo/sa/emoji
`;
const POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: demo }
spec:
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"] } }] }]
`;

let dir: string;
let table: string;
let policyDir: string;
let service: DestinationService & { logs: string[] };
let web: WorkloadFiles;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-if-none-match-'));
  const pki = await createTestPki(join(dir, 'pki'));
  web = await pki.workload('web');
  const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
  table = tableFileIn(dir);
  await writeTable(table, TABLE);
  policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'allow-web.yaml'), POLICY);
  service = await startService(own, { tableFile: table, policyDir });
  await waitUntil(async () => (await fetch(`${service.adminUrl}/ready`)).ok, 'the service to be ready');
});

after(async () => {
  await service?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface CurlAnswer {
  readonly status: number;
  readonly etag: string | undefined;
}

/** curl as an operator would run it: the mesh SVID as client certificate, HTTP/2 by ALPN. */
async function curl(path: string, ifNoneMatch?: string): Promise<CurlAnswer> {
  const { stdout } = await run('curl', [
    '-sS',
    '-m',
    '20',
    // The service is named by its SPIFFE ID, not by a DNS name curl could check.
    '-k',
    '--cert',
    web.certFile,
    '--key',
    web.keyFile,
    '-D',
    '-',
    '-o',
    '/dev/null',
    ...(ifNoneMatch === undefined ? [] : ['-H', `If-None-Match: ${ifNoneMatch}`]),
    `${service.apiUrl}${path}`,
  ]);
  const status = Number(/^HTTP\/\S+ (\d{3})/m.exec(stdout)?.[1] ?? 0);
  const etag = /^etag: (.*?)\r?$/im.exec(stdout)?.[1];
  return { status, etag };
}

async function watchesOpen(): Promise<number> {
  const text = await (await fetch(`${service.adminUrl}/metrics`)).text();
  return metricValue(text, 'mutual_destination_watches_open');
}

for (const [what, path, change] of [
  [
    'a destination',
    '/v1/destinations/198.18.0.3:8080',
    () => writeTable(table, TABLE.replace('sa/emoji', 'sa/emoji-v2')),
  ],
  [
    "a namespace's policies",
    '/v1/policies?namespace=demo',
    () => writeFile(join(policyDir, 'allow-web.yaml'), POLICY.replace('sa/web', 'sa/vote-bot')),
  ],
] as const) {
  test(`${what}: If-None-Match with the ETag gets 304, and with ?wait= is held until a change`, {
    skip,
  }, async () => {
    const first = await curl(path);
    assert.equal(first.status, 200);
    assert.match(first.etag ?? '', /^"[^"]+"$/);
    const etag = first.etag!;

    const same = await curl(path, etag);
    assert.deepEqual(same, { status: 304, etag });
    assert.equal((await curl(path, `W/${etag}`)).status, 304, 'a weak tag compares weakly');
    assert.equal((await curl(path, `"other", ${etag}`)).status, 304, 'one tag of a list');
    assert.equal((await curl(path, '*')).status, 304, '* matches the current answer');
    assert.deepEqual(await curl(path, '"other"'), { status: 200, etag }, 'another tag gets the answer');

    const sep = path.includes('?') ? '&' : '?';
    assert.deepEqual(await curl(`${path}${sep}wait=1s`, etag), { status: 304, etag });
    const held = curl(`${path}${sep}wait=20s`, etag);
    // The watch must be registered before the change, or the change comes with no one waiting.
    await waitUntil(async () => (await watchesOpen()) >= 1, 'the request to be held');
    await change();
    const changed = await held;
    assert.equal(changed.status, 200);
    assert.notEqual(changed.etag, etag);
    assert.equal((await curl(path, changed.etag)).status, 304);
  });
}
