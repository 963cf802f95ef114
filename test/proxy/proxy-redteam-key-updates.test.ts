// TLS 1.3 KeyUpdate floods against a real sidecar, sent by the system's OpenSSL (libssl through
// ctypes, test/proxy/fixtures/tls_key_updates.py): a peer holding a valid SVID that asks for new
// keys thousands of times and never reads made the proxy buffer an answer to each, without bound
// and for as long as the idle timeout (1 h). The inbound and the outbound now close a peer past 32
// KeyUpdates (plus one per MiB of data it sent), count it and log it once; a client renewing its
// keys a few times is served, and so are other clients meanwhile.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

const hasLibssl =
  spawnSync('python3', ['-c', "import ctypes.util; assert ctypes.util.find_library('ssl')"], {
    stdio: 'ignore',
  }).status === 0;
const skip = hasLibssl ? false : 'needs python3 and libssl (the system OpenSSL)';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const FIXTURE = join(repoRoot(), 'test', 'proxy', 'fixtures', 'tls_key_updates.py');

/** Far past the limit, and enough to take a few MB of answers before the fix. */
const FLOOD = 20_000;

let dir: string;
let pki: TestPki;
let emoji: WorkloadFiles;
let web: WorkloadFiles;
let app: Server;
let appPort: number;
let proxy: ProxyProcess;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-redteam-key-updates-'));
  pki = await createTestPki(dir);
  [emoji, web] = await Promise.all([pki.workload('emoji'), pki.workload('web')]);
  app = createServer((request, response) => {
    response.end(`${request.url} ${request.headers['x-mutual-client-id'] ?? 'nobody'}\n`);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appPort = (app.address() as AddressInfo).port;
  proxy = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${appPort}`, '--mode', 'STRICT'],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the fixture to its end; resolves with its last JSON line. */
function runFixture(args: readonly string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [FIXTURE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, unknown>);
      } catch {
        reject(new Error(`the fixture printed no result:\n${out}`));
      }
    });
  });
}

/** GET over mTLS as `web` with Node's client; resolves with the app's answer. */
async function goodRequest(port: number, path: string): Promise<string> {
  const [ca, cert, key] = await Promise.all(
    [web.bundleFile, web.certFile, web.keyFile].map((file) => readFile(file, 'utf8')),
  );
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: '127.0.0.1', port, ca, cert, key, checkServerIdentity: () => undefined },
      () => socket.end(`GET ${path} HTTP/1.0\r\n\r\n`),
    );
    let body = '';
    socket.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(body));
  });
}

const limited = async (target: ProxyProcess, direction: string) =>
  metricValue(await target.metrics(), 'mutual_tls_connections_limited_total', {
    direction,
    reason: 'key_update_flood',
  });

test('inbound: a client renewing its keys 20 times is served; one asking 20,000 times is closed, counted, logged once, while others are served', {
  skip,
}, async () => {
  const inbound = String(proxy.inbound[0]!.port);
  const few = await runFixture(['client', inbound, web.certFile, web.keyFile, '20']);
  assert.equal(few.sent, 20);
  assert.equal(few.answer, 'HTTP/1.1 200 OK');
  assert.equal(await limited(proxy, 'inbound'), 0);

  const floods = [1, 2].map(() => runFixture(['client', inbound, web.certFile, web.keyFile, String(FLOOD)]));
  const served = await goodRequest(proxy.inbound[0]!.port, '/during-flood');
  assert.match(
    served,
    /^HTTP\/1\.1 200 [\s\S]*\/during-flood spiffe:\/\/cluster\.local\/ns\/demo\/sa\/web\n$/,
  );
  for (const flood of await Promise.all(floods)) {
    assert.equal(flood.handshake, true);
    // Closed mid-flood: the request after it gets no answer.
    assert.equal(flood.answer, '', JSON.stringify(flood));
  }
  assert.equal(await limited(proxy, 'inbound'), 2);
  const lines = proxy
    .output()
    .split('\n')
    .filter((line) => line.includes('"msg":"inbound client closed: KeyUpdate flood"'));
  assert.equal(lines.length, 1, proxy.output());
  assert.match(lines[0]!, /spiffe:\/\/cluster\.local\/ns\/demo\/sa\/web/);
  assert.match(
    await goodRequest(proxy.inbound[0]!.port, '/after-flood'),
    /^HTTP\/1\.1 200 [\s\S]*\/after-flood spiffe/,
  );
});

test('outbound: a destination asking for new keys 20,000 times is closed and counted; the next request is served', {
  skip,
}, async () => {
  const server = spawn('python3', [
    FIXTURE,
    ...['server', emoji.certFile, emoji.keyFile, emoji.bundleFile, String(FLOOD)],
  ]);
  let serverOut = '';
  server.stdout.on('data', (chunk: Buffer) => {
    serverOut += chunk.toString();
  });
  const serverClosed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  let client: ProxyProcess | undefined;
  try {
    await waitUntil(async () => /"port"/.test(serverOut), 'the fixture server');
    const { port } = JSON.parse(serverOut.split('\n')[0]!) as { port: number };
    client = await startProxyProcess([
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${port}`],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${proxy.inbound[0]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    await client.untilReady();
    // The signal only ends a request the destination would otherwise hold (no fix: no answer).
    const flooding = await fetch(`http://127.0.0.1:${client.outbound[0]!.port}/flooded`, {
      signal: AbortSignal.timeout(30_000),
    }).catch((error: Error) => error);
    assert.equal(await limited(client, 'outbound'), 1, `answer: ${flooding}`);
    assert.ok(!(flooding instanceof Error) && flooding.status === 502, String(flooding));
    await serverClosed;
    const result = JSON.parse(serverOut.trim().split('\n').at(-1)!) as { handshake: boolean };
    assert.equal(result.handshake, true);
    assert.match(client.output(), /outbound destination closed: KeyUpdate flood/);
    const good = await fetch(`http://127.0.0.1:${client.outbound[1]!.port}/next`);
    assert.equal(good.status, 200);
    assert.equal(await good.text(), `/next ${web.spiffeId}\n`);
  } finally {
    server.kill('SIGKILL');
    await client?.stop();
  }
});
