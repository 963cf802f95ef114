// Time from `mutual up` to "every sidecar ready" (and every app accepting connections) for a
// mesh of 3 and of 30 services, each a tiny node:http app calling the next one. Aim: under 3 s
// and 15 s on this machine. Also how long Ctrl-C (SIGTERM) takes to stop everything. As root,
// also 3 services with `--isolation netns` (pods, iptables rules, network made and removed).
// Not a test: numbers depend on the machine. Writes bench/results/mesh-latest.json.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsUnavailableReason } from '../src/mesh/netns/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const ROUNDS = 2;
const AIM_MS: Record<number, number> = { 3: 3000, 30: 15000 };
const APP =
  "require('http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')";

function meshYaml(count: number): string {
  const lines = ['trustDomain: bench.local', 'mode: STRICT', 'services:'];
  for (let i = 0; i < count; i++) {
    lines.push(
      `  - name: svc-${i}`,
      '    namespace: bench',
      `    command: [node, -e, ${JSON.stringify(APP)}]`,
      '    ports: [8080]',
      ...(i + 1 < count ? [`    upstreams: [svc-${i + 1}]`] : []),
    );
  }
  return `${lines.join('\n')}\n`;
}

type Isolation = 'loopback' | 'netns';

async function measure(count: number, isolation: Isolation): Promise<{ readyMs: number; stopMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-bench-'));
  try {
    await chmod(dir, 0o755); // netns apps run as uid 2103 in this directory
    await writeFile(join(dir, 'mesh.yaml'), meshYaml(count));
    const startedMs = performance.now();
    const up = spawn(
      process.execPath,
      [
        join(root, 'bin', 'mutual.js'),
        ...['up', '-f', 'mesh.yaml', '--state-dir', 'state', '--timeout', '120s', '--isolation', isolation],
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    let output = '';
    const readyMs = await new Promise<number>((resolve, reject) => {
      const collect = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('The mesh is up')) resolve(performance.now() - startedMs);
      };
      up.stdout.on('data', collect);
      up.stderr.on('data', collect);
      up.once('exit', (code) => reject(new Error(`mutual up exited with ${code}:\n${output}`)));
    });
    const stoppingMs = performance.now();
    up.kill('SIGTERM');
    await once(up, 'exit');
    return { readyMs, stopMs: performance.now() - stoppingMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const netnsSkip = netnsUnavailableReason();
const cases: Array<[number, Isolation]> = [
  [3, 'loopback'],
  [30, 'loopback'],
  ...(netnsSkip === undefined ? [[3, 'netns'] as [number, Isolation]] : []),
];
if (netnsSkip !== undefined) console.log(`netns mode not measured: ${netnsSkip}`);
const results = [];
for (const [count, isolation] of cases) {
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await measure(count, isolation));
  const best = Math.min(...rounds.map((r) => r.readyMs));
  const stop = Math.min(...rounds.map((r) => r.stopMs));
  const aim = AIM_MS[count]!;
  console.log(
    `${String(count).padStart(2)} services, ${isolation.padEnd(8)}: up → all ready ${(best / 1000).toFixed(2)} s (best of ${ROUNDS}; aim < ${aim / 1000} s: ${best < aim ? 'met' : 'MISSED'}), stop ${(stop / 1000).toFixed(2)} s`,
  );
  results.push({
    services: count,
    isolation,
    readyMs: Math.round(best),
    stopMs: Math.round(stop),
    aimMs: aim,
    rounds,
  });
}
await mkdir(join(root, 'bench', 'results'), { recursive: true });
await writeFile(
  join(root, 'bench', 'results', 'mesh-latest.json'),
  `${JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, loadavg: loadavg(), results }, null, 2)}\n`,
);
