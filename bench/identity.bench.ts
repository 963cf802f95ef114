// Identity service throughput: certificates issued per second over the real HTTPS API (the real
// `mutual identity serve` process, one Node thread = one core) with 32 concurrent keep-alive
// clients, and the latency of one certify call (p50/p99) under that load and alone. 32 identities
// with the per-identity rate limit raised (--rate-limit), so the limiter is not what is measured.
// Not a test: numbers depend on the machine. Writes bench/results/identity-latest.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../src/clock.ts';
import { createJoinTokenIssuer, loadOrCreateJoinTokenKey } from '../src/identity/index.ts';
import { createCsr } from '../src/pki/index.ts';

const CONCURRENCY = 32;
const IDENTITIES = 32;
const WARMUP_MS = 1500;
const RUN_MS = 5000;
const SOLO_CALLS = 200;
const AIM_PER_SEC = 1000;
/** USER_HZ on Linux: /proc/PID/stat counts CPU time in hundredths of a second. */
const CLOCK_TICKS_PER_S = 100;

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

async function startService(dir: string): Promise<{ child: ChildProcess; url: URL }> {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot(), 'bin', 'mutual.js'),
      ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, 'state')],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--lifetime', '1h'],
      ...['--rate-limit', '1000000', '--rate-burst', '1000000'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // A data listener, not for-await: leaving a for-await loop would close the pipe under the child.
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += String(chunk);
      const match = /listening on (https:\/\/\S+)/.exec(output);
      if (match) resolve({ child, url: new URL(match[1]!) });
    });
    child.once('exit', () => reject(new Error(`identity service did not start: ${output}`)));
  });
}

/**
 * `verified`: the server certificate is checked against the bundle, as workloads do; Node's agent
 * then opens a new TLS connection per call (it does not pool sockets verified with a custom
 * checkServerIdentity), so every call pays a handshake, like a workload's renewal. `keep-alive`:
 * pooled connections, server not verified (a bench-only shortcut) — the service's signing path alone.
 */
type Mode = 'verified' | 'keep-alive';

function certify(url: URL, agent: Agent, ca: string, body: string, mode: Mode): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: '/v1/certify',
        method: 'POST',
        agent,
        ...(mode === 'verified'
          ? { ca, checkServerIdentity: () => undefined }
          : { rejectUnauthorized: false }),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * CPU time the service process has used so far (user + system, all threads), in ms, from
 * /proc: on a shared machine the CPU spent per certificate moves far less than certificates/s.
 */
async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime), counted from the state field (3rd) here.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function run(
  server: ChildProcess,
  url: URL,
  ca: string,
  bodies: readonly string[],
  concurrency: number,
  mode: Mode,
  options: { durationMs?: number; calls?: number },
) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latenciesMs: number[] = [];
  let failures = 0;
  let next = 0;
  const cpuStartMs = await cpuMsOf(server.pid!);
  const started = performance.now();
  const isDone = () =>
    options.calls !== undefined
      ? next >= options.calls
      : performance.now() - started >= (options.durationMs ?? 0);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!isDone()) {
        const body = bodies[next++ % bodies.length]!;
        const t0 = performance.now();
        const status = await certify(url, agent, ca, body, mode);
        if (status === 200) latenciesMs.push(performance.now() - t0);
        else failures++;
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const serverCpuMs = (await cpuMsOf(server.pid!)) - cpuStartMs;
  agent.destroy();
  latenciesMs.sort((a, b) => a - b);
  return {
    certificates: latenciesMs.length,
    failures,
    perSecond: Math.round(latenciesMs.length / elapsedS),
    p50Ms: Number(percentile(latenciesMs, 50).toFixed(2)),
    p99Ms: Number(percentile(latenciesMs, 99).toFixed(2)),
    serverCpuUsPerCertificate: Math.round((serverCpuMs * 1000) / Math.max(1, latenciesMs.length)),
  };
}

const dir = await mkdtemp(join(tmpdir(), 'mutual-identity-bench-'));
let service: ChildProcess | undefined;
try {
  const created = spawn(process.execPath, [
    join(repoRoot(), 'bin', 'mutual.js'),
    ...['ca', 'create', '--trust-domain', 'bench.local', '--out', join(dir, 'ca')],
  ]);
  await new Promise((resolve) => created.on('close', resolve));
  const ca = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  // Tokens minted with the key the service will load from its state directory.
  const key = await loadOrCreateJoinTokenKey(join(dir, 'state', 'identity'));
  const minter = createJoinTokenIssuer({ signingKey: key.privateKey, clock: systemClock });
  const bodies: string[] = [];
  for (let i = 0; i < IDENTITIES; i++) {
    const token = await minter.mint({ namespace: 'bench', serviceAccount: `sa-${i}`, ttlMs: 3_600_000 });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr = await createCsr({ privateKey, spiffeId: `spiffe://bench.local/ns/bench/sa/sa-${i}` });
    bodies.push(JSON.stringify({ token, csr }));
  }
  const started = await startService(dir);
  service = started.child;
  await run(started.child, started.url, ca, bodies, CONCURRENCY, 'keep-alive', { durationMs: WARMUP_MS });
  const loaded = await run(started.child, started.url, ca, bodies, CONCURRENCY, 'keep-alive', {
    durationMs: RUN_MS,
  });
  const verified = await run(started.child, started.url, ca, bodies, CONCURRENCY, 'verified', {
    durationMs: RUN_MS,
  });
  const solo = await run(started.child, started.url, ca, bodies, 1, 'verified', { calls: SOLO_CALLS });
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    setup: {
      concurrency: CONCURRENCY,
      identities: IDENTITIES,
      runMs: RUN_MS,
      transport: 'HTTPS (TLS 1.3, keep-alive), real `mutual identity serve` process',
    },
    loaded,
    verifiedNewConnectionEach: verified,
    solo,
    aimPerSecond: AIM_PER_SEC,
    meetsAim: loaded.perSecond >= AIM_PER_SEC,
  };
  const outDir = join(repoRoot(), 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'identity-latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(
    [
      `identity service, ${CONCURRENCY} concurrent HTTPS clients, ${IDENTITIES} identities, ${RUN_MS / 1000}s:`,
      `  ${loaded.perSecond} certificates/s (aim ≥ ${AIM_PER_SEC}: ${results.meetsAim ? 'met' : 'NOT met'}), ${loaded.failures} failures`,
      `  latency under load p50 ${loaded.p50Ms} ms, p99 ${loaded.p99Ms} ms (pooled connections); service CPU ${loaded.serverCpuUsPerCertificate} µs per certificate`,
      `  verified server, new TLS connection per call: ${verified.perSecond}/s, p50 ${verified.p50Ms} ms, p99 ${verified.p99Ms} ms; service CPU ${verified.serverCpuUsPerCertificate} µs per certificate`,
      `  one client alone: p50 ${solo.p50Ms} ms, p99 ${solo.p99Ms} ms (${solo.perSecond}/s)`,
      `  load average ${results.loadAverage1m} on ${results.cores} cores; written to bench/results/identity-latest.json`,
    ].join('\n'),
  );
} finally {
  if (service && service.exitCode === null) {
    const exited = new Promise((resolve) => service!.once('exit', resolve));
    service.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
}
