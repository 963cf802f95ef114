import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDestinationTarget } from './answer.ts';
import { buildClusterIndex, type EndpointSlice, type Pod, portList, type Service } from './cluster-index.ts';

const injected = { 'mutual.dev/proxy-injected': 'true' };
const pod = (
  name: string,
  ip: string,
  extra: Partial<Pod> & { labels?: Record<string, string> } = {},
): Pod => ({
  metadata: { name, namespace: 'demo', labels: extra.labels ?? injected, ...(extra.metadata ?? {}) },
  spec: { serviceAccountName: name, ...(extra.spec ?? {}) },
  status: { phase: 'Running', podIPs: [{ ip }], ...(extra.status ?? {}) },
});

test('pods: identity, defaults and the cases that are not meshed', () => {
  const index = buildClusterIndex(
    {
      pods: [
        pod('web', '10.0.0.1'),
        pod('nosa', '10.0.0.2', { spec: { serviceAccountName: '' } }),
        pod('v6', 'fd00::5'),
        pod('host', '192.168.1.5', { spec: { hostNetwork: true } }),
        pod('pending', '10.0.0.3', { status: { phase: 'Pending', podIP: '10.0.0.3' } }),
        pod('off', '10.0.0.4', { labels: { 'mutual.dev/proxy-injected': 'false' } }),
      ],
      services: [],
      endpointSlices: [],
    },
    { trustDomain: 'example.org', clusterDomain: 'cluster.local' },
  );
  const cases: [string, number, unknown][] = [
    ['10.0.0.1', 80, 'spiffe://example.org/ns/demo/sa/web'],
    ['10.0.0.2', 80, 'spiffe://example.org/ns/demo/sa/default'],
    ['fd00::5', 80, 'spiffe://example.org/ns/demo/sa/v6'],
    ['10.0.0.3', 80, 'spiffe://example.org/ns/demo/sa/pending'],
    ['192.168.1.5', 80, undefined],
    ['10.0.0.4', 80, 'not-injected'],
  ];
  for (const [ip, port, expected] of cases) {
    const answer = index.resolveAddress(ip, port);
    assert.equal(answer?.meshed ? answer.serverId : answer?.reason, expected, ip);
  }
});

test('services: endpoints that are not ready do not count; unnamed ports match; names need the domain', () => {
  const service: Service = {
    metadata: { name: 'api', namespace: 'demo' },
    spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] },
  };
  const slice: EndpointSlice = {
    metadata: { name: 'api-x', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'api' } },
    endpoints: [
      { addresses: ['10.0.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web' } },
      { addresses: ['10.0.0.9'], conditions: { ready: false }, targetRef: { kind: 'Pod', name: 'legacy' } },
    ],
    ports: [{ port: 8080 }],
  };
  const index = buildClusterIndex(
    {
      pods: [pod('web', '10.0.0.1'), pod('legacy', '10.0.0.9', { labels: {} })],
      services: [service],
      endpointSlices: [slice],
    },
    { trustDomain: 'cluster.local', clusterDomain: 'corp.local' },
  );
  assert.equal(index.resolveAddress('10.96.0.1', 80)?.serverId, 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(index.resolveName('api.demo.svc.corp.local', 80)?.meshed, true);
  assert.equal(index.resolveName('api.demo.svc', 80)?.meshed, true);
  assert.equal(index.resolveName('api.demo.svc.cluster.local', 80), undefined);
  assert.equal(index.resolveName('api.demo', 80), undefined);
});

test('port lists as annotations write them', () => {
  assert.deepEqual([...portList('25, 3306,8000-8002,x,70000')], [25, 3306, 8000, 8001, 8002]);
  assert.deepEqual([...portList(undefined)], []);
});

test('destination targets: addresses, names and what is refused', () => {
  assert.deepEqual(parseDestinationTarget('10.0.0.1:80'), {
    kind: 'address',
    address: '10.0.0.1',
    port: 80,
    text: '10.0.0.1:80',
  });
  assert.equal(parseDestinationTarget('[FD00::5]:443').text, '[fd00::5]:443');
  assert.equal(parseDestinationTarget('Web.Demo.svc.cluster.local:80').text, 'web.demo.svc.cluster.local:80');
  for (const bad of [
    '10.0.0.1',
    '10.0.0.1:65536',
    ':80',
    '[10.0.0.1]:80',
    '300.1.1.1:80',
    'a..b:80',
    'x_y:80',
  ]) {
    assert.throws(() => parseDestinationTarget(bad), { code: 'MUTUAL_DESTINATION_REQUEST_INVALID' }, bad);
  }
});
