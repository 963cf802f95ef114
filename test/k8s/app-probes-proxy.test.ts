// Kubelet probes under STRICT, with real processes: the injector's probe rewrite (the same
// function the webhook and `mutual inject` use) turns an app container's HTTP probes into
// MUTUAL_PROXY_APP_PROBES; a real `mutual proxy run` in STRICT mode answers
// /app-health/<container>/<kind> on its admin port by probing a real local app, which first
// answers 200, then 503, then hangs; a plaintext request like the kubelet's to the app through
// the proxy's inbound is refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { rewriteAppProbes } from '../../src/k8s/index.ts';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
} from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

let dir: string;
let pki: TestPki;
let proxy: ProxyProcess;
let appStatus = 200;
const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
const app = createServer((request, response) => {
  seen.push({ url: request.url ?? '', headers: request.headers });
  if (request.url === '/hang') return; // never answers
  response.writeHead(appStatus, { 'content-type': 'text/plain', location: '/elsewhere' }).end('app\n');
});
const port = () => (app.address() as AddressInfo).port;

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: free } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return free;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-app-probes-'));
  pki = await createTestPki(join(dir, 'pki'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const down = await closedPort();
  // The container as a user writes it; the injector rewrites it and hands the originals over.
  const rewrite = rewriteAppProbes(
    [
      {
        name: 'web',
        ports: [{ name: 'http', containerPort: port() }],
        livenessProbe: { httpGet: { path: '/livez?full=1', port: 'http' }, timeoutSeconds: 2 },
        readinessProbe: {
          httpGet: { path: '/readyz', port: port(), httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] },
        },
        startupProbe: { httpGet: { path: '/hang', port: port() }, timeoutSeconds: 1 },
      },
      { name: 'worker', readinessProbe: { httpGet: { path: '/', port: down } } },
    ],
    true,
  );
  const workload = await pki.workload('web');
  proxy = await startProxyProcess(
    [
      ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
      ...[
        '--inbound',
        `127.0.0.1:0=${port()}`,
        '--mode',
        'STRICT',
        '--admin-listen',
        '127.0.0.1:0',
        '--drain-timeout',
        '1s',
      ],
    ],
    { MUTUAL_PROXY_APP_PROBES: JSON.stringify(rewrite.probes) },
  );
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  app.closeAllConnections();
  app.close();
  await rm(dir, { recursive: true, force: true });
});

async function probe(path: string) {
  const response = await fetch(`${proxy.adminUrl}${path}`, {
    headers: { 'user-agent': 'kube-probe/1.31' },
    redirect: 'manual',
  });
  return { status: response.status, body: await response.text(), location: response.headers.get('location') };
}

test("/app-health answers with the app's status: 200, then 503 once the app says so; path, query, headers and the kubelet's User-Agent reach the app", async () => {
  seen.length = 0;
  const ok = await probe('/app-health/web/readyz');
  assert.equal(ok.status, 200, ok.body);
  assert.equal(seen.at(-1)?.url, '/readyz');
  assert.equal(seen.at(-1)?.headers['x-probe'], 'kubelet');
  assert.equal(seen.at(-1)?.headers['user-agent'], 'kube-probe/1.31');
  const live = await probe('/app-health/web/livez');
  assert.equal(live.status, 200);
  assert.equal(seen.at(-1)?.url, '/livez?full=1', 'the named port resolved, the query kept');

  appStatus = 503;
  try {
    const failing = await probe('/app-health/web/readyz');
    assert.equal(failing.status, 503);
    assert.match(failing.body, /answered 503/);
    assert.equal(failing.location, null, "the app's headers are not passed on");
  } finally {
    appStatus = 200;
  }
  assert.equal((await probe('/app-health/web/readyz')).status, 200);
});

test('an app that does not answer within the probe timeout, or is not listening, fails the probe with 503', async () => {
  const hung = await probe('/app-health/web/startupz');
  assert.equal(hung.status, 503);
  assert.match(hung.body, /did not answer within 1000 ms/);
  const down = await probe('/app-health/worker/readyz');
  assert.equal(down.status, 503);
  assert.match(down.body, /not reachable: ECONNREFUSED/);
  // Paths the injector did not write are not answered.
  assert.equal((await probe('/app-health/web/other')).status, 404);
  assert.equal((await probe('/app-health/nobody/livez')).status, 404);
});

test("without the rewrite the kubelet's plaintext probe through the STRICT inbound is refused", async () => {
  const inbound = proxy.inbound[0]!;
  await assert.rejects(fetch(`http://${inbound.host}:${inbound.port}/readyz`));
});

test('`mutual proxy run` refuses bad MUTUAL_PROXY_APP_PROBES with MUTUAL_PROXY_CONFIG_INVALID and starts nothing', async () => {
  const workload = await pki.workload('bad');
  const child = spawn(
    process.execPath,
    [
      join(repoRoot(), 'bin', 'mutual.js'),
      ...['proxy', 'run', '--cert', workload.certFile, '--key', workload.keyFile],
      ...['--bundle', workload.bundleFile, '--inbound', '127.0.0.1:0=8080', '--admin-listen', '127.0.0.1:0'],
    ],
    {
      env: {
        ...process.env,
        NO_COLOR: '1',
        MUTUAL_PROXY_APP_PROBES:
          '{"/app-health/web/livez":{"httpGet":{"path":"/","port":8080,"scheme":"FTP"}}}',
      },
      timeout: 30_000,
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'close');
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^error\[MUTUAL_PROXY_CONFIG_INVALID\]/);
  assert.match(
    stderr,
    /MUTUAL_PROXY_APP_PROBES\) "\/app-health\/web\/livez": httpGet\.scheme "FTP" is not supported: write HTTP or HTTPS/,
  );
});
