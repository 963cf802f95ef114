import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseDestinationTable } from '../destination/index.ts';
import { meshDestinationTable, writeDestinationTable } from './destination-table.ts';
import { parseMeshConfig } from './mesh-config.ts';
import { planNetnsMesh } from './netns/plan-netns.ts';
import type { PodRecord } from './netns/pod.ts';
import { type MeshPlan, planMesh, portsNeeded } from './plan.ts';
import { meshPaths } from './runtime.ts';

const MESH = parseMeshConfig(
  `
trustDomain: demo.local
services:
  - name: web
    namespace: shop
    command: [node, web.mjs]
    ports: [8080]
    upstreams: [db]
  - name: db
    namespace: shop
    command: [node, db.mjs]
    ports: [{ port: 5432, protocol: tcp }, 9100, { port: 7000, protocol: tcp }]
    opaquePorts: [5432]
    skipInboundPorts: [9100]
  - name: bot
    namespace: shop
    command: [node, bot.mjs]
    upstreams: [web]
`,
  '/demo/mesh.yaml',
);
const paths = meshPaths('/state');
const tools = { nodePath: '/usr/bin/node', mutualBin: '/mutual.js', baseEnv: {} };

const tableOf = (plan: MeshPlan) =>
  meshDestinationTable(
    plan.services.map((servicePlan) => ({
      service: {
        ...servicePlan.service,
        spiffeId: servicePlan.spiffeId,
        ports: servicePlan.ports,
        ...(servicePlan.pod ? { pod: servicePlan.pod } : {}),
      },
      opaquePorts: servicePlan.service.opaquePorts,
    })),
  );

test('netns: each pod address on its declared ports, opaque marked, skipped ports and portless services left out', () => {
  const pods = new Map(['web', 'db', 'bot'].map((name, index) => [name, `198.18.0.${index + 2}`]));
  const plan = planNetnsMesh({
    config: MESH,
    paths,
    pods: (service) =>
      ({
        service,
        netns: `m-${service}`,
        address: pods.get(service)!,
        dir: `/run/${service}`,
        proxyGid: 3000,
      }) as PodRecord,
    hostAddress: '198.18.0.1',
    identityPorts: { api: 4000, admin: 4001 },
    destinationPorts: { api: 4002, admin: 4003 },
    ...tools,
  });
  assert.deepEqual(tableOf(plan), [
    {
      address: '198.18.0.2',
      serverId: 'spiffe://demo.local/ns/shop/sa/web',
      names: ['web', 'web.shop.svc.cluster.local'],
      ports: [{ port: 8080, protocol: 'http' }],
    },
    {
      address: '198.18.0.3',
      serverId: 'spiffe://demo.local/ns/shop/sa/db',
      names: ['db', 'db.shop.svc.cluster.local'],
      ports: [{ port: 5432, protocol: 'opaque' }, 7000],
    },
  ]);
  // The transparent proxies ask the destination service on the host's address; no static table.
  for (const service of plan.services) {
    const argv = service.proxy.argv.join(' ');
    assert.match(argv, /--destination-url https:\/\/198\.18\.0\.1:4002 /);
    assert.doesNotMatch(argv, /--destination /);
  }
  assert.deepEqual(plan.destination.argv.slice(2, 9), [
    ...['destination', 'serve', '--file', '/state/destinations.yaml'],
    ...['--listen', '198.18.0.1:4002', '--admin-listen'],
  ]);
  assert.equal(plan.destination.serverId, 'spiffe://demo.local/ns/mutual-system/sa/destination');
});

test('loopback: every service on 127.0.0.1 at its sidecar inbound port; the table parses back', async () => {
  const ports = Array.from({ length: portsNeeded(MESH) }, (_, index) => 7000 + index);
  const plan = planMesh({ config: MESH, paths, ports, ...tools });
  const table = tableOf(plan);
  const inbound = (name: string, port: number) =>
    plan.services.find((s) => s.service.name === name)!.ports.find((p) => p.port === port)!.inboundPort!;
  assert.deepEqual(
    table.map((entry) => [entry.address, entry.serverId, entry.ports]),
    [
      ['127.0.0.1', 'spiffe://demo.local/ns/shop/sa/web', [{ port: inbound('web', 8080), protocol: 'http' }]],
      [
        '127.0.0.1',
        'spiffe://demo.local/ns/shop/sa/db',
        [{ port: inbound('db', 5432), protocol: 'opaque' }, inbound('db', 7000)],
      ],
    ],
  );
  const dir = await mkdtemp(join(tmpdir(), 'mutual-destination-table-'));
  try {
    const file = join(dir, 'destinations.yaml');
    await writeDestinationTable(file, table);
    const parsed = parseDestinationTable(await readFile(file, 'utf8'), file);
    assert.deepEqual(
      parsed.map((entry) => [entry.address, entry.serverId, [...entry.ports!]]),
      [
        ['127.0.0.1', 'spiffe://demo.local/ns/shop/sa/web', [[inbound('web', 8080), 'http']]],
        [
          '127.0.0.1',
          'spiffe://demo.local/ns/shop/sa/db',
          [
            [inbound('db', 5432), 'opaque'],
            [inbound('db', 7000), 'detect'],
          ],
        ],
      ],
    );
    assert.deepEqual(parsed[1]!.names, ['db', 'db.shop.svc.cluster.local']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
