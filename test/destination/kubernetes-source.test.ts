// The Kubernetes source against a local HTTPS server speaking the API's real list and watch shapes
// (fake-kube-api.ts), through the client production uses (kubeconfig → createKubeClient →
// informers): pods by injection and ServiceAccount, Services through their EndpointSlices, watch
// events, bookmarks, a 410 Gone that forces a relist, cut connections, and the whole path through
// `startDestinationService` and its mTLS API.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createKubernetesSource, KUBERNETES_RESOURCES } from '../../src/destination/index.ts';
import { createKubeClient, kubeconfigConnection } from '../../src/k8s/kube-client/index.ts';
import { createTestPki, waitUntil } from '../../src/testing/mesh-pki.ts';
import { get, startService } from './destination-fixture.ts';
import { type FakeKubeApi, startFakeKubeApi, TOKEN } from './fake-kube-api.ts';

const { pods: PODS, services: SERVICES, endpointSlices: SLICES } = KUBERNETES_RESOURCES;
const TD = 'cluster.local';

function pod(
  name: string,
  ip: string,
  options: { sa?: string; injected?: boolean; annotations?: Record<string, string> } = {},
) {
  return {
    metadata: {
      name,
      namespace: 'demo',
      uid: `uid-${name}`,
      labels: {
        app: name.split('-')[0],
        ...(options.injected === false ? {} : { 'mutual.dev/proxy-injected': 'true' }),
      },
      annotations: options.annotations ?? {},
    },
    spec: {
      serviceAccountName: options.sa ?? name.split('-')[0],
      containers: [{ name: 'app', image: 'app' }],
    },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

function service(name: string, clusterIP: string, port: number, targetPort: number) {
  return {
    metadata: { name, namespace: 'demo' },
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ports: [{ name: 'http', port, targetPort, protocol: 'TCP' }],
    },
  };
}

function slice(serviceName: string, suffix: string, targetPort: number, podNames: string[], ips: string[]) {
  return {
    metadata: {
      name: `${serviceName}-${suffix}`,
      namespace: 'demo',
      labels: { 'kubernetes.io/service-name': serviceName },
    },
    addressType: 'IPv4',
    endpoints: podNames.map((name, i) => ({
      addresses: [ips[i]],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', name, namespace: 'demo' },
    })),
    ports: [{ name: 'http', port: targetPort, protocol: 'TCP' }],
  };
}

let dir: string;
let api: FakeKubeApi;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-destination-k8s-'));
  api = await startFakeKubeApi();
  api.add(PODS, pod('web-1', '10.0.0.11'));
  api.add(PODS, pod('web-2', '10.0.0.12'));
  api.add(PODS, pod('legacy-1', '10.0.0.21', { injected: false }));
  api.add(
    PODS,
    pod('db-1', '10.0.0.31', {
      annotations: {
        'config.mutual.dev/opaque-ports': '5432',
        'config.mutual.dev/skip-inbound-ports': '9100',
      },
    }),
  );
  api.add(PODS, { ...pod('done-1', '10.0.0.41'), status: { phase: 'Succeeded', podIP: '10.0.0.41' } });
  api.add(SERVICES, service('web', '10.96.0.10', 80, 8080));
  api.add(SERVICES, service('legacy', '10.96.0.20', 80, 8080));
  api.add(SERVICES, service('empty', '10.96.0.30', 80, 8080));
  api.add(SLICES, slice('web', 'a', 8080, ['web-1'], ['10.0.0.11']));
  api.add(SLICES, slice('web', 'b', 8080, ['web-2'], ['10.0.0.12']));
  api.add(SLICES, slice('legacy', 'a', 8080, ['legacy-1', 'web-1'], ['10.0.0.21', '10.0.0.11']));
});

after(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startSource() {
  const events: string[] = [];
  const source = createKubernetesSource({
    client: createKubeClient(await kubeconfigConnection(await api.kubeconfig())),
    trustDomain: TD,
    backoff: { initialMs: 20, maxMs: 100 },
    onInformerEvent: (resource, event) => events.push(`${resource}:${event.kind}`),
  });
  source.start();
  await waitUntil(async () => source.notReadyReason() === undefined, 'the first lists');
  return { source, events };
}

test('after the first lists: pods by injection and ServiceAccount, Services by their endpoints', async () => {
  const { source } = await startSource();
  try {
    assert.deepEqual(source.resolveAddress('10.0.0.11', 8080), {
      meshed: true,
      serverId: `spiffe://${TD}/ns/demo/sa/web`,
      protocol: 'detect',
      kind: 'pod',
      name: 'demo/web-1',
    });
    assert.equal(source.resolveAddress('10.0.0.31', 5432)?.protocol, 'opaque');
    assert.equal(source.resolveAddress('10.0.0.31', 9100)?.reason, 'skipped-port');
    assert.equal(source.resolveAddress('10.0.0.21', 8080)?.reason, 'not-injected');
    assert.equal(
      source.resolveAddress('10.0.0.41', 8080),
      undefined,
      'a finished pod gives its address back',
    );
    assert.equal(source.resolveAddress('10.9.9.9', 80), undefined);
    // The Service: two slices (paged lists of 2), both endpoints meshed as web.
    const web = {
      meshed: true,
      serverId: `spiffe://${TD}/ns/demo/sa/web`,
      protocol: 'detect',
      kind: 'service',
      name: 'demo/web',
    };
    assert.deepEqual(source.resolveAddress('10.96.0.10', 80), web);
    assert.deepEqual(source.resolveName('web.demo.svc.cluster.local', 80), web);
    assert.equal(source.resolveAddress('10.96.0.10', 81)?.reason, 'unknown-port');
    assert.equal(source.resolveAddress('10.96.0.20', 80)?.reason, 'mixed-endpoints');
    assert.equal(source.resolveAddress('10.96.0.30', 80)?.reason, 'no-endpoints');
    assert.equal(source.resolveName('nope.demo.svc.cluster.local', 80), undefined);
    // Every request carried the token from the kubeconfig; lists followed `continue` pages.
    assert.ok(api.requests.every((request) => request.authorization === `Bearer ${TOKEN}`));
    assert.ok(api.requests.some((request) => request.path === PODS && request.query.get('continue') === '2'));
  } finally {
    source.close();
  }
});

test('watch events add, change and remove answers; services follow their pods', async () => {
  const { source } = await startSource();
  try {
    await waitUntil(async () => api.openWatches(PODS) > 0 && api.openWatches(SLICES) > 0, 'watches open');
    api.add(PODS, pod('emoji-1', '10.0.0.51'));
    await waitUntil(async () => source.resolveAddress('10.0.0.51', 80)?.meshed === true, 'ADDED pod meshed');
    api.modify(PODS, pod('emoji-1', '10.0.0.51', { injected: false }));
    await waitUntil(
      async () => source.resolveAddress('10.0.0.51', 80)?.reason === 'not-injected',
      'MODIFIED pod',
    );
    api.remove(PODS, 'demo', 'emoji-1');
    await waitUntil(async () => source.resolveAddress('10.0.0.51', 80) === undefined, 'DELETED pod');
    // web-2 now runs as another ServiceAccount: the Service's endpoints no longer agree.
    api.modify(PODS, pod('web-2', '10.0.0.12', { sa: 'web-canary' }));
    await waitUntil(
      async () => source.resolveAddress('10.96.0.10', 80)?.reason === 'identities-differ',
      'endpoints with two identities',
    );
    api.modify(PODS, pod('web-2', '10.0.0.12'));
    await waitUntil(async () => source.resolveAddress('10.96.0.10', 80)?.meshed === true, 'agreeing again');
  } finally {
    source.close();
  }
});

test('a bookmark moves the version the next watch starts from; a 410 Gone forces a relist', async () => {
  const { source, events } = await startSource();
  try {
    await waitUntil(async () => api.openWatches(SERVICES) > 0, 'services watch open');
    api.add(PODS, pod('noise-1', '10.0.0.61')); // moves the version past the services list
    const bookmark = api.bookmark(SERVICES);
    const watchesBefore = api.requests.filter(
      (r) => r.path === SERVICES && r.query.get('watch') === '1',
    ).length;
    api.endWatches(SERVICES, 'end'); // as the server does at timeoutSeconds; after the bookmark on the same stream
    await waitUntil(
      async () =>
        api.requests.filter((r) => r.path === SERVICES && r.query.get('watch') === '1').length >
        watchesBefore,
      'the services watch resumed',
    );
    const resumed = api.requests.filter((r) => r.path === SERVICES && r.query.get('watch') === '1').at(-1)!;
    assert.equal(resumed.query.get('resourceVersion'), bookmark);
    assert.equal(resumed.query.get('allowWatchBookmarks'), 'true');

    // Away while history is compacted: the pod added meanwhile is only in a fresh list.
    const listsBefore = api.lists(PODS);
    await waitUntil(async () => api.openWatches(PODS) > 0, 'pods watch open');
    api.endWatches(PODS, 'cut');
    api.add(PODS, pod('late-1', '10.0.0.71'));
    api.compact();
    await waitUntil(
      async () => source.resolveAddress('10.0.0.71', 80)?.meshed === true,
      'the pod from the relist',
    );
    assert.ok(api.lists(PODS) > listsBefore, 'relisted');
    assert.ok(events.includes('pods:expired'), events.join(' '));
    assert.ok(events.includes('pods:failed'), `a cut connection is a failure, retried: ${events.join(' ')}`);
  } finally {
    source.close();
  }
});

test('the destination service answers from Kubernetes over its mTLS API', async () => {
  const pki = await createTestPki(join(dir, 'pki'));
  const web = await pki.workload('web');
  const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
  const service = await startService(own, { kubernetes: await kubeconfigConnection(await api.kubeconfig()) });
  try {
    await waitUntil(async () => (await fetch(`${service.adminUrl}/ready`)).ok, 'service ready');
    const answer = await get(`${service.apiUrl}/v1/destinations/web.demo.svc.cluster.local:80`, {
      client: web,
      caFile: pki.bundleFile,
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(
      [answer.body.meshed, answer.body.serverId, answer.body.source],
      [true, `spiffe://${TD}/ns/demo/sa/web`, 'kubernetes'],
    );
  } finally {
    await service.close();
  }
});

test('a kubeconfig the client cannot use is refused with the reason', async () => {
  const bad = join(dir, 'bad-kubeconfig');
  await (await import('node:fs/promises')).writeFile(
    bad,
    'current-context: x\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\nclusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]\nusers: [{ name: u, user: { auth-provider: { name: gcp } } }]\n',
  );
  await assert.rejects(kubeconfigConnection(bad), {
    code: 'MUTUAL_K8S_CONFIG_INVALID',
    message: /auth-provider plugin, which Kubernetes removed in 1\.26/,
  });
  const wrongToken = createKubeClient({ server: api.url, caPem: api.caPem, bearerToken: async () => 'nope' });
  await assert.rejects(wrongToken.list(PODS), {
    code: 'MUTUAL_K8S_API_FAILED',
    message: /HTTP 401.*credentials/,
  });
});
