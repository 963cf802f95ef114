import assert from 'node:assert/strict';
import test from 'node:test';
import { parseAppProbes } from '../../config/index.ts';
import { type AppContainerLike, rewriteAppProbes } from './app-probes.ts';

const web = (probes: Partial<AppContainerLike>): AppContainerLike => ({
  name: 'web',
  image: 'nginx',
  ports: [{ name: 'http', containerPort: 8080 }],
  ...probes,
});

const cases: {
  name: string;
  probe: Record<string, unknown>;
  rewritten?: Record<string, unknown>;
  kept?: string[];
}[] = [
  {
    name: 'HTTP, numeric port, headers and timeout carried over',
    probe: {
      httpGet: { path: '/healthz?full=1', port: 8080, httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] },
      timeoutSeconds: 3,
      periodSeconds: 7,
    },
    rewritten: {
      httpGet: {
        path: '/healthz?full=1',
        port: 8080,
        httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }],
      },
      timeoutSeconds: 3,
    },
  },
  {
    name: 'a named port resolved from the container, default path and timeout',
    probe: { httpGet: { port: 'http', scheme: 'HTTP' } },
    rewritten: { httpGet: { path: '/', port: 8080 }, timeoutSeconds: 1 },
  },
  {
    name: 'HTTPS rewritten like HTTP, its scheme carried over (the proxy makes the GET over TLS)',
    probe: { httpGet: { path: '/tls', port: 'http', scheme: 'HTTPS' }, timeoutSeconds: 2 },
    rewritten: { httpGet: { path: '/tls', port: 8080, scheme: 'HTTPS' }, timeoutSeconds: 2 },
  },
  {
    name: 'a scheme the API does not have left alone',
    probe: { httpGet: { path: '/x', port: 8080, scheme: 'FTP' } },
    kept: ['/x'],
  },
  {
    name: 'another host left alone',
    probe: { httpGet: { path: '/h', port: 80, host: 'example.com' } },
    kept: ['/h'],
  },
  {
    name: 'an unknown named port left alone',
    probe: { httpGet: { path: '/n', port: 'admin' } },
    kept: ['/n'],
  },
  {
    name: 'grpc: its port and service, the timeout carried over',
    probe: { grpc: { port: 9090, service: 'orders.v1.Orders' }, timeoutSeconds: 2, periodSeconds: 5 },
    rewritten: { grpc: { port: 9090, service: 'orders.v1.Orders' }, timeoutSeconds: 2 },
  },
  {
    name: 'grpc without a service: the server as a whole',
    probe: { grpc: { port: 9090, service: '' } },
    rewritten: { grpc: { port: 9090 }, timeoutSeconds: 1 },
  },
  {
    name: 'tcpSocket, a named port resolved (the proxy would accept it itself otherwise)',
    probe: { tcpSocket: { port: 'http' }, timeoutSeconds: 4 },
    rewritten: { tcpSocket: { port: 8080 }, timeoutSeconds: 4 },
  },
  { name: 'tcpSocket to another host left alone', probe: { tcpSocket: { port: 80, host: 'db' } }, kept: [] },
  { name: 'grpc with a port out of range left alone', probe: { grpc: { port: 0 } }, kept: [] },
  { name: 'exec left alone', probe: { exec: { command: ['true'] } }, kept: [] },
];

for (const c of cases) {
  test(`probe rewrite: ${c.name}`, () => {
    const input = [web({ livenessProbe: structuredClone(c.probe) as never })];
    const result = rewriteAppProbes(input, true);
    const probe = result.containers[0]?.livenessProbe;
    if (c.rewritten) {
      assert.deepEqual(result.probes, { '/app-health/web/livez': c.rewritten });
      assert.deepEqual(probe?.httpGet, { path: '/app-health/web/livez', port: 4191, scheme: 'HTTP' });
      // Only httpGet is left: the kubelet refuses a probe with two handlers.
      assert.deepEqual(
        Object.keys(probe ?? {}).filter((key) => ['httpGet', 'grpc', 'tcpSocket', 'exec'].includes(key)),
        ['httpGet'],
      );
      // Everything else of the probe (period, thresholds, timeout) is the kubelet's, unchanged.
      assert.equal(probe?.timeoutSeconds, c.probe.timeoutSeconds);
      assert.equal(probe?.periodSeconds, c.probe.periodSeconds);
      assert.deepEqual(result.keptProbePaths, []);
      // What the injector writes is what the proxy's configuration accepts.
      const parsed = parseAppProbes(JSON.stringify(result.probes), 'MUTUAL_PROXY_APP_PROBES');
      assert.deepEqual(parsed.problems, []);
      assert.equal(parsed.probes.size, 1);
    } else {
      assert.deepEqual(result.probes, {});
      assert.deepEqual(probe, c.probe);
      assert.deepEqual(result.keptProbePaths, c.kept);
    }
    assert.deepEqual(input[0]?.livenessProbe, c.probe, 'the input is not changed');
  });
}

test('parseAppProbes takes scheme HTTPS and names a scheme it does not know', () => {
  const https = parseAppProbes(
    '{"/app-health/web/livez":{"httpGet":{"path":"/tls","port":8443,"scheme":"HTTPS"}}}',
    'MUTUAL_PROXY_APP_PROBES',
  );
  assert.deepEqual(https.problems, []);
  assert.equal(https.probes.get('/app-health/web/livez')?.scheme, 'HTTPS');
  const plain = parseAppProbes(
    '{"/app-health/web/livez":{"httpGet":{"path":"/","port":80,"scheme":"HTTP"}}}',
    'X',
  );
  assert.equal(plain.probes.get('/app-health/web/livez')?.scheme, undefined);
  assert.deepEqual(
    parseAppProbes('{"/app-health/web/livez":{"httpGet":{"path":"/","port":80,"scheme":"https"}}}', 'X')
      .problems,
    [
      'X "/app-health/web/livez": httpGet.scheme "https" is not supported: write HTTP or HTTPS (or leave it out: HTTP)',
    ],
  );
});

test('probe rewrite: all three kinds of every container get their own path; opted out, none is touched', () => {
  const containers = [
    web({
      livenessProbe: { httpGet: { path: '/live', port: 8080 } },
      readinessProbe: { httpGet: { path: '/ready', port: 'http' } },
      startupProbe: { httpGet: { path: '/started', port: 8080 } },
    }),
    { name: 'worker', readinessProbe: { httpGet: { path: '/ready', port: 9000 } } },
  ];
  const result = rewriteAppProbes(containers, true);
  assert.deepEqual(Object.keys(result.probes), [
    '/app-health/web/livez',
    '/app-health/web/readyz',
    '/app-health/web/startupz',
    '/app-health/worker/readyz',
  ]);
  assert.equal(result.containers[1]?.readinessProbe?.httpGet?.path, '/app-health/worker/readyz');
  const off = rewriteAppProbes(containers, false);
  assert.deepEqual(off.probes, {});
  assert.deepEqual(off.containers, containers);
  assert.deepEqual(off.keptProbePaths, ['/live', '/ready', '/started']);
});

const badProbes: [string, string][] = [
  ['not JSON', '{'],
  ['not an object', '[]'],
  ['a path not under /app-health', '{"/healthz":{"httpGet":{"path":"/","port":80}}}'],
  ['no check', '{"/app-health/web/livez":{"timeoutSeconds":1}}'],
  ['two checks', '{"/app-health/web/livez":{"tcpSocket":{"port":80},"grpc":{"port":80}}}'],
  ['exec', '{"/app-health/web/livez":{"exec":{"command":["true"]}}}'],
  ['a grpc host', '{"/app-health/web/livez":{"grpc":{"port":80,"host":"evil.example"}}}'],
  ['a grpc service with a newline', '{"/app-health/web/livez":{"grpc":{"port":80,"service":"a\\nb"}}}'],
  ['a tcpSocket named port', '{"/app-health/web/livez":{"tcpSocket":{"port":"http"}}}'],
  ['a port out of range', '{"/app-health/web/livez":{"httpGet":{"path":"/","port":70000}}}'],
  ['a named port', '{"/app-health/web/livez":{"httpGet":{"path":"/","port":"http"}}}'],
  [
    'a scheme other than HTTP or HTTPS',
    '{"/app-health/web/livez":{"httpGet":{"path":"/","port":80,"scheme":"https"}}}',
  ],
  ['a host', '{"/app-health/web/livez":{"httpGet":{"path":"/","port":80,"host":"evil.example"}}}'],
  ['a path with a space', '{"/app-health/web/livez":{"httpGet":{"path":"/a b","port":80}}}'],
  [
    'a header with a newline',
    '{"/app-health/web/livez":{"httpGet":{"path":"/","port":80,"httpHeaders":[{"name":"X","value":"a\\nb"}]}}}',
  ],
  ['a zero timeout', '{"/app-health/web/livez":{"httpGet":{"path":"/","port":80},"timeoutSeconds":0}}'],
];
for (const [name, text] of badProbes) {
  test(`parseAppProbes refuses ${name}, naming the source`, () => {
    const parsed = parseAppProbes(text, 'MUTUAL_PROXY_APP_PROBES');
    assert.equal(parsed.problems.length >= 1, true, name);
    assert.match(parsed.problems[0] ?? '', /^MUTUAL_PROXY_APP_PROBES/);
  });
}
