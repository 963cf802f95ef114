// A long-running mesh, as an operator leaves it for days, compressed: 2-minute workload
// certificates (a renewal about every 84 s per sidecar), an issuer rotation halfway, and mixed
// traffic through the sidecars the whole time at a modest rate (well under one core): HTTP/1
// keep-alive (h2load --h1), a new connection per request (curl), HTTP/2 prior knowledge (h2load),
// opaque TCP (redis-cli, one long-lived connection and a new one every few seconds), requests an
// AuthorizationPolicy denies, plaintext refused on a STRICT port, a policy file edited every few
// minutes, `mutual dashboard` polled (and its /api/stream followed) and `mutual check` / `edges`
// run now and then. Every SAMPLE_SECONDS it records, for every process (up, identity,
// destination, each sidecar and app, the dashboard): RSS, open fds and CPU time; from every
// sidecar's /metrics the open connections, renewals, handshake failures and the number of series;
// and the state directory's files. At the end it prints each process's start → end and the slope
// of RSS and fds per hour after the warm-up, CPU per request over time, every failed request and
// the log lines at warn/error level.
// Not a test. `npm run bench -- soak`; SOAK_MINUTES (default 40), SAMPLE_SECONDS (30),
// WARMUP_MINUTES (5), SOAK_DIR (a new /tmp/soak-*; kept with samples.json when set).
// Writes bench/results/soak-latest.json. Needs h2load (nghttp2-client), curl, redis-server and
// redis-cli.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const mutualBin = join(root, 'bin', 'mutual.js');
const MINUTES = Number(process.env.SOAK_MINUTES ?? 40);
const SAMPLE_SECONDS = Number(process.env.SAMPLE_SECONDS ?? 30);
const WARMUP_MINUTES = Number(process.env.WARMUP_MINUTES ?? Math.min(5, MINUTES / 4));
const POLICY_EDIT_SECONDS = 180;
const CHECK_SECONDS = 180;
const CLK_TCK = 100;
const PAGE_SIZE = 4096;

const HTTP1_APP = `
const http = require('node:http');
const secret = process.env.SECRET_URL;
http.createServer((req, res) => {
  if (req.url === '/chain' && secret) {
    http.get(secret + '/', (up) => { up.resume(); up.on('end', () => res.end('chain ' + up.statusCode)); })
      .on('error', (e) => { res.statusCode = 502; res.end(String(e)); });
    return;
  }
  req.resume();
  req.on('end', () => res.end('ok ' + process.env.MUTUAL_SERVICE));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
const H2_APP = `
const http2 = require('node:http2');
http2.createServer().on('stream', (stream) => {
  stream.respond({ ':status': 200, 'content-type': 'text/plain' });
  stream.end('h2 ok');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
const IDLE_APP = 'setInterval(() => {}, 1 << 30)';

function meshYaml(): string {
  return `trustDomain: soak.local
policyDir: policies
certificateLifetime: 2m
services:
  - name: web
    namespace: soak
    command: [node, -e, ${JSON.stringify(HTTP1_APP)}]
    ports: [8080]
    upstreams: [secret]
  - name: h2
    namespace: soak
    command: [node, -e, ${JSON.stringify(H2_APP)}]
    ports: [8080]
  - name: secret
    namespace: soak
    command: [node, -e, ${JSON.stringify(HTTP1_APP)}]
    ports: [8080]
  - name: cache
    namespace: soak
    command: exec redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no
    ports: [{ port: 6379, protocol: tcp }]
  - name: loadgen
    namespace: soak
    command: [node, -e, ${JSON.stringify(IDLE_APP)}]
    upstreams: [web, h2, secret, cache]
`;
}

const PEER_AUTH = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: soak }
spec: { mtls: { mode: STRICT } }
`;
const SECRET_POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: secret-only-from-web, namespace: soak }
spec:
  selector: { matchLabels: { app: secret } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["soak.local/ns/soak/sa/web"] } }]
`;
function webPolicy(edit: number): string {
  // Both versions allow loadgen; the edit changes what the sidecars hold, not what passes.
  return `# edit ${edit}
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-callers, namespace: soak }
spec:
  selector: { matchLabels: { app: web } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["soak.local/ns/soak/sa/loadgen"${edit % 2 === 1 ? ', "soak.local/ns/soak/sa/other"' : ''}] } }]
`;
}

interface Runtime {
  supervisor: { pid: number };
  identity: { pid: number; adminUrl: string };
  destination?: { pid: number; adminUrl: string };
  services: Array<{
    name: string;
    adminUrl: string;
    ports: Array<{ port: number; inboundPort?: number }>;
    upstreams: Array<{ service: string; localAddress: string }>;
    app: { pid: number };
    proxy: { pid: number };
  }>;
}

interface ProcSample {
  pid: number;
  rssKb: number;
  fds: number;
  cpuSeconds: number;
}
interface Sample {
  t: number; // seconds since the mesh was up
  procs: Record<string, ProcSample | null>;
  sidecars: Record<string, Record<string, number>>;
  identitySeries: number;
  files: Record<string, number>;
  /** Inbound requests and connections the sidecars decided (allowed or denied) so far. */
  requests: number;
}

const counters = {
  http1: { ok: 0, failed: 0 },
  h2: { ok: 0, failed: 0 },
  curlNewConnection: { ok: 0, failed: 0 },
  denied: { ok: 0, failed: 0 },
  plaintextRefused: { ok: 0, failed: 0 },
  redisLongLived: { ok: 0, failed: 0 },
  redisNewConnection: { ok: 0, failed: 0 },
  dashboard: { ok: 0, failed: 0 },
  checks: { ok: 0, failed: 0 },
  policyEdits: 0,
  issuerRotations: 0,
};
const failures: string[] = [];
function fail(kind: string, detail: string): void {
  if (failures.length < 200) failures.push(`${new Date().toISOString()} ${kind}: ${detail.slice(0, 800)}`);
}

async function readProc(pid: number): Promise<ProcSample | null> {
  try {
    const statText = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    const rssKb = (Number(fields[21]) * PAGE_SIZE) / 1024;
    const fds = (await readdir(`/proc/${pid}/fd`)).length;
    return { pid, rssKb, fds, cpuSeconds };
  } catch {
    return null;
  }
}

/** The process that does the work: for `sh -c`, node or redis-server is the shell's child. */
async function mainPid(pid: number): Promise<number> {
  try {
    const exe = await readlink(`/proc/${pid}/exe`);
    if (!exe.endsWith('/sh') && !exe.endsWith('/dash') && !exe.endsWith('/bash')) return pid;
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/);
    return children[0] ? Number(children[0]) : pid;
  } catch {
    return pid;
  }
}

/** Has `pid` write a heap snapshot (SIGUSR2), sums its nodes' self sizes, and deletes it. */
async function liveHeapMb(pid: number): Promise<number> {
  const cwd = await readlink(`/proc/${pid}/cwd`);
  const mine = async () =>
    (await readdir(cwd)).filter((name) => name.startsWith('Heap.') && name.includes(`.${pid}.`));
  const before = new Set(await mine());
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const file = (await mine()).find((name) => !before.has(name));
    if (file) {
      // Written as the heap is walked: read it once it parses (and remove it either way).
      try {
        for (;;) {
          await sleep(500);
          let snapshot: { snapshot: { meta: { node_fields: string[] } }; nodes: number[] };
          try {
            snapshot = JSON.parse(await readFile(join(cwd, file), 'utf8'));
          } catch (error) {
            if (Date.now() > deadline) throw error;
            continue;
          }
          const fields = snapshot.snapshot.meta.node_fields;
          let total = 0;
          for (let i = fields.indexOf('self_size'); i < snapshot.nodes.length; i += fields.length)
            total += snapshot.nodes[i] ?? 0;
          return total / 1024 / 1024;
        }
      } finally {
        await rm(join(cwd, file), { force: true });
      }
    }
    if (Date.now() > deadline) throw new Error('no heap snapshot within 60 s');
    await sleep(250);
  }
}

function parseMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  let series = 0;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    series++;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!match) continue;
    const [, name = '', labels = '', value = '0'] = match;
    const wanted =
      /connections_open$|certificate_renewals_total$|handshake_failures_total$|heap|resident_memory|open_fds|inbound_refused_total$|authorization_decisions_total$/;
    if (!wanted.test(name)) continue;
    const result = /result="([^"]*)"/.exec(labels)?.[1] ?? /decision="([^"]*)"/.exec(labels)?.[1];
    const key = result ? `${name}{${result}}` : name;
    out[key] = (out[key] ?? 0) + Number(value);
  }
  out.series = series;
  return out;
}

async function getText(url: string, timeoutMs = 5000): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return res.text();
}

async function filesIn(dir: string, prefix = ''): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    const name = prefix + entry.name;
    if (entry.isDirectory()) Object.assign(out, await filesIn(path, `${name}/`));
    else {
      try {
        out[name] = (await stat(path)).size;
      } catch {}
    }
  }
  return out;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const keep = process.env.SOAK_DIR !== undefined;
  const dir = process.env.SOAK_DIR ?? (await mkdtemp(join(tmpdir(), 'soak-')));
  await mkdir(join(dir, 'policies'), { recursive: true });
  const stateDir = join(dir, 'state');
  await writeFile(join(dir, 'mesh.yaml'), meshYaml());
  await writeFile(join(dir, 'policies', 'peer-authentication.yaml'), PEER_AUTH);
  await writeFile(join(dir, 'policies', 'secret-only-from-web.yaml'), SECRET_POLICY);
  await writeFile(join(dir, 'policies', 'web-callers.yaml'), webPolicy(0));
  const children: ChildProcess[] = [];
  // Every node process of the mesh writes a heap snapshot on SIGUSR2 (after a full GC): the live
  // heap, which RSS hides (V8 grows its old space to --initial-old-space-size before collecting).
  const meshEnv = {
    ...process.env,
    NO_COLOR: '1',
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2`.trim(),
  };
  let stopping = false;
  const endAt = () => stopping;

  const up = spawn(process.execPath, [mutualBin, 'up', '-f', 'mesh.yaml', '--state-dir', stateDir], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: meshEnv,
  });
  let upOutput = '';
  up.stdout.on('data', (chunk: Buffer) => {
    upOutput += chunk.toString();
  });
  up.stderr.on('data', (chunk: Buffer) => {
    upOutput += chunk.toString();
  });
  const cleanup = async () => {
    stopping = true;
    for (const child of children) child.kill('SIGTERM');
    if (up.exitCode === null) {
      up.kill('SIGTERM');
      await Promise.race([once(up, 'exit'), sleep(20000)]);
    }
    if (!keep) await rm(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  process.once('SIGTERM', () => void cleanup().then(() => process.exit(143)));

  try {
    const upDeadline = Date.now() + 120_000;
    while (!upOutput.includes('The mesh is up')) {
      if (up.exitCode !== null || Date.now() > upDeadline)
        throw new Error(`mutual up did not start:\n${upOutput}`);
      await sleep(200);
    }
    const startedMs = Date.now();
    const runtime = async (): Promise<Runtime> =>
      JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as Runtime;
    const rt = await runtime();
    const loadgen = rt.services.find((s) => s.name === 'loadgen');
    if (!loadgen) throw new Error('no loadgen in runtime.json');
    const upstream = (name: string) => {
      const found = loadgen.upstreams.find((u) => u.service === name);
      if (!found) throw new Error(`loadgen has no upstream ${name}`);
      return found.localAddress;
    };
    const webInbound = rt.services.find((s) => s.name === 'web')?.ports[0]?.inboundPort;
    const endMs = startedMs + MINUTES * 60_000;
    console.log(`soak: ${MINUTES} min in ${dir}; state ${stateDir}`);

    const dashboard = spawn(
      process.execPath,
      [mutualBin, 'dashboard', '--state-dir', stateDir, '--listen', '127.0.0.1:0'],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: meshEnv },
    );
    children.push(dashboard);
    let dashboardOut = '';
    dashboard.stdout?.on('data', (chunk: Buffer) => {
      dashboardOut += chunk.toString();
    });
    while (!/http:\/\/127\.0\.0\.1:\d+/.test(dashboardOut)) {
      if (dashboard.exitCode !== null) throw new Error(`dashboard did not start: ${dashboardOut}`);
      await sleep(100);
    }
    const dashboardUrl = /http:\/\/127\.0\.0\.1:\d+/.exec(dashboardOut)?.[0] ?? '';

    const loops: Promise<void>[] = [];
    const every = (seconds: number, body: () => Promise<void>) => {
      loops.push(
        (async () => {
          while (!endAt() && Date.now() < endMs) {
            const started = Date.now();
            try {
              await body();
            } catch (error) {
              fail('loop', String(error));
            }
            const wait = Math.min(seconds * 1000 - (Date.now() - started), endMs - Date.now());
            if (wait > 0) await sleep(wait);
          }
        })(),
      );
    };
    const h2load = async (kind: 'http1' | 'h2', args: string[]) => {
      const seconds = Math.max(1, Math.min(60, Math.floor((endMs - Date.now()) / 1000)));
      const child = spawn('h2load', [...args, '-D', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      await once(child, 'exit');
      children.splice(children.indexOf(child), 1);
      const match =
        /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
      const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
      if (!match || !codes) {
        if (!endAt()) fail(kind, `h2load printed no summary: ${out.slice(-300)}`);
        return;
      }
      const bad = Number(match[2]) + Number(match[3]) + Number(codes[3]) + Number(codes[4]);
      counters[kind].ok += Number(codes[1]);
      counters[kind].failed += bad;
      if (bad > 0) fail(kind, out.slice(out.indexOf('requests:')));
    };
    // HTTP/1 keep-alive: 2 connections at 5 requests/s each, one h2load run a minute.
    every(0, () => h2load('http1', ['--h1', '-c', '2', '--rps', '5', `http://${upstream('web')}/`]));
    // HTTP/2 prior knowledge: 1 connection, 4 streams at once, 8 requests/s.
    every(0, () => h2load('h2', ['-c', '1', '-m', '4', '--rps', '8', `http://${upstream('h2')}/`]));
    const curl = async (args: string[]) => {
      try {
        const { stdout } = await execFileAsync('curl', [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--max-time',
          '10',
          ...args,
        ]);
        return { code: 0, status: stdout.trim() };
      } catch (error) {
        const e = error as { code?: number; stderr?: string; stdout?: string };
        return { code: e.code ?? -1, status: `${e.stdout ?? ''} ${e.stderr ?? ''}`.trim() };
      }
    };
    // A new connection per request, web calling secret (allowed), once a second.
    every(1, async () => {
      const result = await curl(['-H', 'Connection: close', `http://${upstream('web')}/chain`]);
      if (result.code === 0 && result.status === '200') counters.curlNewConnection.ok++;
      else {
        counters.curlNewConnection.failed++;
        fail('curl', JSON.stringify(result));
      }
    });
    // loadgen calling secret: the AuthorizationPolicy answers 403.
    every(5, async () => {
      const result = await curl([`http://${upstream('secret')}/`]);
      if (result.code === 0 && result.status === '403') counters.denied.ok++;
      else {
        counters.denied.failed++;
        fail('denied', JSON.stringify(result));
      }
    });
    // Plain text straight to web's STRICT inbound port: refused (curl: empty reply or reset).
    every(10, async () => {
      const result = await curl([`http://127.0.0.1:${webInbound}/`]);
      if (result.code !== 0) counters.plaintextRefused.ok++;
      else {
        counters.plaintextRefused.failed++;
        fail('plaintext', `answered ${result.status}`);
      }
    });
    // Opaque TCP: one redis-cli connection for the whole soak (through every rotation).
    const [cacheHost = '127.0.0.1', cachePort = '0'] = upstream('cache').split(':');
    const redisLong = spawn(
      'redis-cli',
      ['-h', cacheHost, '-p', cachePort, '-r', '-1', '-i', '0.2', 'INCR', 'soak'],
      {
        stdio: ['ignore', 'pipe', 'pipe'] as const,
      },
    ) as import('node:child_process').ChildProcessByStdio<
      null,
      import('node:stream').Readable,
      import('node:stream').Readable
    >;
    children.push(redisLong);
    let redisBuffer = '';
    const redisLine = (chunk: Buffer) => {
      redisBuffer += chunk.toString();
      const lines = redisBuffer.split('\n');
      redisBuffer = lines.pop() ?? '';
      for (const line of lines) {
        if (/^\(integer\) \d+$|^\d+$/.test(line.trim())) counters.redisLongLived.ok++;
        else if (line.trim() !== '') {
          counters.redisLongLived.failed++;
          fail('redis-long', line);
        }
      }
    };
    redisLong.stdout.on('data', redisLine);
    redisLong.stderr.on('data', redisLine);
    redisLong.on('exit', (code) => {
      if (!endAt()) fail('redis-long', `redis-cli exited with ${code}`);
    });
    // Opaque TCP, a new connection every 3 s.
    every(3, async () => {
      try {
        const { stdout } = await execFileAsync(
          'redis-cli',
          ['-h', cacheHost, '-p', cachePort, 'SET', 'k', 'v'],
          {
            timeout: 10_000,
          },
        );
        if (stdout.trim() === 'OK') counters.redisNewConnection.ok++;
        else {
          counters.redisNewConnection.failed++;
          fail('redis-new', stdout);
        }
      } catch (error) {
        counters.redisNewConnection.failed++;
        fail('redis-new', String(error));
      }
    });
    // The dashboard: an open /api/stream, as a page holds, and a poll of its API every 5 s.
    let streamBytes = 0;
    const stream = spawn('curl', ['-sSN', `${dashboardUrl}/api/stream`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(stream);
    stream.stdout.on('data', (chunk: Buffer) => {
      streamBytes += chunk.length;
    });
    every(5, async () => {
      for (const path of ['/api/overview', '/api/edges', '/api/certificates']) {
        const result = await curl([`${dashboardUrl}${path}`]);
        if (result.status === '200') counters.dashboard.ok++;
        else {
          counters.dashboard.failed++;
          fail('dashboard', `${path} ${JSON.stringify(result)}`);
        }
      }
    });
    // `mutual check` and `mutual edges` every few minutes.
    every(CHECK_SECONDS, async () => {
      for (const command of [['check'], ['edges']]) {
        try {
          await execFileAsync(process.execPath, [mutualBin, ...command, '--state-dir', stateDir], {
            cwd: dir,
            timeout: 60_000,
            env: { ...process.env, NO_COLOR: '1' },
          });
          counters.checks.ok++;
        } catch (error) {
          const e = error as { stdout?: string; stderr?: string };
          const lines = `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n');
          const failed = lines.filter((line) => /^\s*[×✗]/.test(line));
          // The plaintext client is there on purpose: that check is expected to fail.
          if (failed.length === 1 && /no plaintext traffic into meshed workloads/.test(failed[0] ?? '')) {
            counters.checks.ok++;
            continue;
          }
          counters.checks.failed++;
          fail(`mutual ${command[0]}`, failed.join(' | ') || lines.slice(-5).join(' | '));
        }
      }
    });
    // A policy file edited every few minutes.
    every(POLICY_EDIT_SECONDS, async () => {
      if (Date.now() - startedMs < 10_000) return;
      counters.policyEdits++;
      await writeFile(join(dir, 'policies', 'web-callers.yaml'), webPolicy(counters.policyEdits));
    });
    // The issuer rotated once, halfway: a new issuer under the same anchor copied into the CA.
    loops.push(
      (async () => {
        await sleep(Math.max(0, (endMs - startedMs) / 2));
        if (endAt()) return;
        const next = join(dir, `issuer-${Date.now()}`);
        const caDir = join(stateDir, 'ca');
        await execFileAsync(process.execPath, [
          mutualBin,
          'ca',
          'issuer',
          '--ca',
          caDir,
          '--out',
          next,
          '--issuer-lifetime',
          '365d',
        ]);
        await copyFile(join(next, 'issuer.key'), join(caDir, 'issuer.key.new'));
        await copyFile(join(next, 'issuer.crt'), join(caDir, 'issuer.crt.new'));
        // Each file is renamed into place (as a Secret's files are swapped), key first.
        const { rename } = await import('node:fs/promises');
        await rename(join(caDir, 'issuer.key.new'), join(caDir, 'issuer.key'));
        await rename(join(caDir, 'issuer.crt.new'), join(caDir, 'issuer.crt'));
        counters.issuerRotations++;
        console.log(`soak: issuer rotated at ${Math.round((Date.now() - startedMs) / 1000)} s`);
      })(),
    );

    const samples: Sample[] = [];
    const requestsSoFar = () =>
      counters.http1.ok +
      counters.h2.ok +
      counters.curlNewConnection.ok +
      counters.denied.ok +
      counters.redisLongLived.ok +
      counters.redisNewConnection.ok;
    const takeSample = async () => {
      const now = await runtime();
      const procs: Record<string, ProcSample | null> = {};
      procs.up = await readProc(now.supervisor.pid);
      procs.identity = await readProc(now.identity.pid);
      if (now.destination) procs.destination = await readProc(now.destination.pid);
      procs.dashboard = dashboard.pid ? await readProc(dashboard.pid) : null;
      const sidecars: Sample['sidecars'] = {};
      for (const service of now.services) {
        procs[`${service.name}.proxy`] = await readProc(service.proxy.pid);
        procs[`${service.name}.app`] = await readProc(await mainPid(service.app.pid));
        try {
          sidecars[service.name] = parseMetrics(await getText(`${service.adminUrl}/metrics`));
        } catch (error) {
          fail('metrics', `${service.name}: ${String(error)}`);
        }
      }
      let identitySeries = 0;
      try {
        identitySeries = parseMetrics(await getText(`${now.identity.adminUrl}/metrics`)).series ?? 0;
      } catch {}
      const sample: Sample = {
        t: Math.round((Date.now() - startedMs) / 1000),
        procs,
        sidecars,
        identitySeries,
        files: await filesIn(stateDir),
        // Counted by the sidecars as they happen (each inbound request or connection decided), not
        // when an h2load run ends, so that CPU per request compares like with like.
        requests:
          Object.values(sidecars).reduce(
            (sum, m) =>
              sum +
              (m['mutual_authorization_decisions_total{allow}'] ?? 0) +
              (m['mutual_authorization_decisions_total{deny}'] ?? 0),
            0,
          ) || requestsSoFar(),
      };
      samples.push(sample);
      const totalRss = Object.values(procs).reduce((s, p) => s + (p?.rssKb ?? 0), 0);
      const totalFds = Object.values(procs).reduce((s, p) => s + (p?.fds ?? 0), 0);
      const totalCpu = Object.values(procs).reduce((s, p) => s + (p?.cpuSeconds ?? 0), 0);
      const fileBytes = Object.values(sample.files).reduce((s, n) => s + n, 0);
      const renewals = Object.values(sidecars).reduce(
        (s, m) => s + (m['mutual_proxy_certificate_renewals_total{success}'] ?? 0),
        0,
      );
      console.log(
        `t=${sample.t}s rss=${(totalRss / 1024).toFixed(0)}MB fds=${totalFds} cpu=${totalCpu.toFixed(1)}s ` +
          `state=${(fileBytes / 1024).toFixed(0)}KB renewals=${renewals} requests=${sample.requests} ` +
          `failures=${failures.length} stream=${streamBytes}B`,
      );
      await writeFile(join(dir, 'samples.json'), JSON.stringify({ counters, failures, samples }, null, 1));
    };
    const liveHeap: Record<string, number[]> = {};
    const snapshotAll = async () => {
      const now = await runtime();
      const pids: Array<[string, number | undefined]> = [
        ['up', now.supervisor.pid],
        ['identity', now.identity.pid],
        ['destination', now.destination?.pid],
        ['dashboard', dashboard.pid],
        ...now.services.map((service): [string, number] => [`${service.name}.proxy`, service.proxy.pid]),
      ];
      for (const [name, pid] of pids) {
        if (pid === undefined) continue;
        const mb = await liveHeapMb(pid).catch((error) => {
          fail('heap snapshot', `${name}: ${String(error)}`);
          return undefined;
        });
        if (mb === undefined) continue;
        liveHeap[name] ??= [];
        liveHeap[name].push(mb);
      }
    };
    let isWarmSnapshotTaken = false;
    while (Date.now() < endMs) {
      // Before the sample: a snapshot raises the RSS a process keeps, so every sample the slopes
      // use (after the warm-up) comes after it.
      if (!isWarmSnapshotTaken && Date.now() - startedMs >= WARMUP_MINUTES * 60_000) {
        isWarmSnapshotTaken = true;
        await snapshotAll();
      }
      await takeSample().catch((error) => fail('sample', String(error)));
      await sleep(Math.min(SAMPLE_SECONDS * 1000, Math.max(0, endMs - Date.now())));
    }
    await snapshotAll();
    stopping = true;
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(loops);
    await takeSample().catch(() => {});

    report(samples, stateDir);
    console.log('live JS heap after a full GC (heap snapshot), MB, after warm-up → end:');
    for (const [name, values] of Object.entries(liveHeap))
      console.log(`  ${name.padEnd(16)} ${values.map((v) => v.toFixed(2)).join(' → ')}`);
    const logLines = await logProblems(join(stateDir, 'logs'));
    const result = {
      minutes: MINUTES,
      counters,
      failures,
      logLines,
      liveHeap,
      summary: summarize(samples),
      samples,
    };
    await mkdir(join(here, '..', '..', 'bench', 'results'), { recursive: true });
    await writeFile(
      join(root, 'bench', 'results', 'soak-latest.json'),
      `${JSON.stringify(result, null, 1)}\n`,
    );
    console.log('\ncounters:', JSON.stringify(counters));
    console.log(`failures (${failures.length}):`);
    for (const line of failures.slice(0, 30)) console.log(`  ${line}`);
    console.log('log lines at warn/error level, by file and message:');
    for (const [key, count] of Object.entries(logLines).slice(0, 40)) console.log(`  ${count}× ${key}`);
  } finally {
    await cleanup();
  }
}

function summarize(samples: Sample[]) {
  const warm = samples.filter((s) => s.t >= WARMUP_MINUTES * 60);
  const names = new Set(samples.flatMap((s) => Object.keys(s.procs)));
  const rows: Record<string, unknown> = {};
  for (const name of names) {
    const have = samples.filter((s) => s.procs[name]);
    const warmHave = warm.filter((s) => s.procs[name]);
    const first = have[0]?.procs[name];
    const last = have[have.length - 1]?.procs[name];
    if (!first || !last) continue;
    const perHour = (pick: (p: ProcSample) => number) =>
      slope(warmHave.map((s) => [s.t / 3600, pick(s.procs[name] as ProcSample)]));
    rows[name] = {
      rssMb: [first.rssKb / 1024, last.rssKb / 1024],
      rssMbPerHour: perHour((p) => p.rssKb / 1024),
      fds: [first.fds, last.fds],
      fdsPerHour: perHour((p) => p.fds),
      cpuSeconds: [first.cpuSeconds, last.cpuSeconds],
      restarted: new Set(have.map((s) => (s.procs[name] as ProcSample).pid)).size - 1,
    };
  }
  // CPU per request over time: the whole mesh's CPU over the requests, per quarter of the soak.
  const cpuOf = (s: Sample) => Object.values(s.procs).reduce((sum, p) => sum + (p?.cpuSeconds ?? 0), 0);
  const quarters: number[] = [];
  for (let q = 0; q < 4; q++) {
    const a = samples[Math.floor((q * (samples.length - 1)) / 4)];
    const b = samples[Math.floor(((q + 1) * (samples.length - 1)) / 4)];
    if (!a || !b || b.requests === a.requests) continue;
    quarters.push(((cpuOf(b) - cpuOf(a)) / (b.requests - a.requests)) * 1e6);
  }
  const series: Record<string, [number, number]> = {};
  const firstSample = samples[0];
  const lastSample = samples[samples.length - 1];
  for (const name of Object.keys(lastSample?.sidecars ?? {})) {
    series[name] = [firstSample?.sidecars[name]?.series ?? 0, lastSample?.sidecars[name]?.series ?? 0];
  }
  const files: Record<string, [number, number]> = {};
  for (const name of Object.keys(lastSample?.files ?? {})) {
    files[name] = [firstSample?.files[name] ?? 0, lastSample?.files[name] ?? 0];
  }
  return {
    processes: rows,
    cpuMicrosecondsPerRequestByQuarter: quarters,
    metricSeries: series,
    identitySeries: [firstSample?.identitySeries, lastSample?.identitySeries],
    files,
  };
}

function report(samples: Sample[], stateDir: string): void {
  const summary = summarize(samples);
  console.log(`\nper process (warm-up ${WARMUP_MINUTES} min excluded from slopes):`);
  console.log('process            RSS MB start→end   MB/h    fds start→end  fds/h  CPU s  restarts');
  for (const [name, row] of Object.entries(summary.processes) as Array<[string, Record<string, never>]>) {
    const r = row as unknown as {
      rssMb: [number, number];
      rssMbPerHour: number;
      fds: [number, number];
      fdsPerHour: number;
      cpuSeconds: [number, number];
      restarted: number;
    };
    console.log(
      `${name.padEnd(18)} ${r.rssMb[0].toFixed(1).padStart(6)} → ${r.rssMb[1].toFixed(1).padStart(6)} ${r.rssMbPerHour.toFixed(1).padStart(8)}` +
        `  ${String(r.fds[0]).padStart(5)} → ${String(r.fds[1]).padEnd(5)} ${r.fdsPerHour.toFixed(1).padStart(6)} ${(r.cpuSeconds[1] - r.cpuSeconds[0]).toFixed(1).padStart(6)} ${r.restarted}`,
    );
  }
  console.log(
    `CPU µs per request, by quarter: ${summary.cpuMicrosecondsPerRequestByQuarter.map((n) => n.toFixed(0)).join(' → ')}`,
  );
  console.log(`sidecar /metrics series first → last: ${JSON.stringify(summary.metricSeries)}`);
  console.log(`identity /metrics series: ${summary.identitySeries.join(' → ')}`);
  console.log(`files in ${stateDir} (bytes first → last):`);
  for (const [name, [a, b]] of Object.entries(summary.files))
    if (a !== b) console.log(`  ${name}: ${a} → ${b}`);
}

async function logProblems(logsDir: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const name of await readdir(logsDir).catch(() => [] as string[])) {
    const text = await readFile(join(logsDir, name), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      let key: string | undefined;
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string; message?: string };
        if (entry.level === 'warn' || entry.level === 'error')
          key = `${name} ${entry.level} ${entry.msg ?? entry.message}`;
      } catch {
        if (/error|warn/i.test(line)) key = `${name} ${line.slice(0, 120)}`;
      }
      if (key) counts[key] = (counts[key] ?? 0) + 1;
    }
  }
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
}

await main();
