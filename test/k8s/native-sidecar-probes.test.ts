// A pod's own native sidecar (an init container with restartPolicy: Always: a log shipper, a
// metrics exporter) with an HTTP probe, under STRICT, with real processes. The kubelet's probe of
// it is plaintext to the pod's IP, redirected to the proxy and refused: its readiness counts for
// the pod's and its startup probe holds back the app, so the pod would never be Ready. Its probes
// are rewritten like an app container's: the injected pod points them at the proxy's admin port,
// and a real `mutual proxy run` in STRICT mode, given the injected MUTUAL_PROXY_APP_PROBES, answers
// them by probing the sidecar (a real local server).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { DEFAULT_INJECT_OPTIONS, injectPod, type PodLike } from '../../src/k8s/index.ts';
import { createTestPki, startProxyProcess } from '../../src/testing/mesh-pki.ts';

interface Container {
  name: string;
  restartPolicy?: string;
  env?: { name: string; value?: string }[];
  readinessProbe?: { httpGet?: { path?: string; port?: number | string; scheme?: string } };
  startupProbe?: { httpGet?: { path?: string; port?: number | string; scheme?: string } };
}

test("a native sidecar's HTTP probes go through the proxy's admin port, and a STRICT proxy answers them from the sidecar", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-sidecar-probes-'));
  const seen: string[] = [];
  const shipper = createServer((request, response) => {
    seen.push(request.url ?? '');
    response.writeHead(200).end('ok\n');
  });
  await new Promise<void>((resolve) => shipper.listen(0, '127.0.0.1', resolve));
  const port = (shipper.address() as AddressInfo).port;
  try {
    const pod: PodLike = {
      metadata: { labels: { app: 'web' } },
      spec: {
        initContainers: [
          { name: 'migrate', image: 'app', command: ['migrate'] },
          {
            name: 'log-shipper',
            image: 'fluent/fluent-bit:3.0',
            restartPolicy: 'Always',
            ports: [{ name: 'http', containerPort: port }],
            readinessProbe: { httpGet: { path: '/api/v1/health', port: 'http' } },
            startupProbe: { httpGet: { path: '/', port } },
          },
        ],
        containers: [
          { name: 'web', image: 'nginx', readinessProbe: { httpGet: { path: '/ready', port: 80 } } },
        ],
      },
    };
    const outcome = injectPod(pod, { ...DEFAULT_INJECT_OPTIONS, trustAnchorsPem: 'unused here' });
    assert.equal(outcome.kind, 'injected');
    const init = (outcome.pod.spec as { initContainers: Container[] }).initContainers;
    assert.deepEqual(
      init.map((container) => container.name),
      ['mutual-init', 'mutual-proxy', 'migrate', 'log-shipper'],
    );
    const sidecar = init[3]!;
    assert.deepEqual(sidecar.readinessProbe?.httpGet, {
      path: '/app-health/log-shipper/readyz',
      port: 4191,
      scheme: 'HTTP',
    });
    assert.deepEqual(sidecar.startupProbe?.httpGet, {
      path: '/app-health/log-shipper/startupz',
      port: 4191,
      scheme: 'HTTP',
    });
    const probes = init[1]!.env!.find((variable) => variable.name === 'MUTUAL_PROXY_APP_PROBES')!.value!;
    assert.deepEqual(Object.keys(JSON.parse(probes)).sort(), [
      '/app-health/log-shipper/readyz',
      '/app-health/log-shipper/startupz',
      '/app-health/web/readyz',
    ]);

    const pki = await createTestPki(join(dir, 'pki'));
    const workload = await pki.workload('web');
    const proxy = await startProxyProcess(
      [
        ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
        ...['--inbound', `127.0.0.1:0=${port}`, '--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
        ...['--drain-timeout', '1s'],
      ],
      { MUTUAL_PROXY_APP_PROBES: probes },
    );
    try {
      await proxy.untilReady();
      for (const [path, reached] of [
        ['/app-health/log-shipper/readyz', '/api/v1/health'],
        ['/app-health/log-shipper/startupz', '/'],
      ] as const) {
        const response = await fetch(`${proxy.adminUrl}${path}`, {
          headers: { 'user-agent': 'kube-probe/1.31' },
        });
        assert.equal(response.status, 200, await response.text());
        assert.equal(seen.at(-1), reached);
      }
    } finally {
      await proxy.stop();
    }
  } finally {
    shipper.closeAllConnections();
    shipper.close();
    await rm(dir, { recursive: true, force: true });
  }
});
