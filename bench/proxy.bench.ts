// Mutual's sidecar proxy beside nginx, haproxy and stunnel mTLS pairs, in one run of the shared
// harness (../shared/bench/run.sh, README there), plus the resident memory of one idle sidecar.
// Not a test: numbers depend on the machine. Run with `npm run bench -- proxy` (≈10 min);
// DURATION=3 PATHS="nginx-mtls haproxy-mtls nginx-l4-mtls" for a quick one. Writes
// bench/results/proxy-latest.md and proxy-latest.json and prints ours ÷ each peer.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIDECAR_NODE_FLAGS } from '../src/config/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const harnessDir = resolve(process.env.MESH_BENCH_DIR ?? join(root, '..', 'shared', 'bench'));
const workdir = process.env.PROXY_BENCH_WORKDIR ?? '/tmp/mutual-proxy-bench';
const resultsDir = join(root, 'bench', 'results');
const pairScript = join(here, 'proxy-pair.js');
const floorScript = join(here, 'idle-node-floor.js');
const mutualBin = join(root, 'bin', 'mutual.js');
const OURS_NAME = 'mutual';
const IDLE_SETTLE_MS = 5_000;
const IDLE_RSS_AIM_MB = 64;
const TOOLS = ['wrk', 'nginx', 'haproxy', 'stunnel', 'jq', 'curl', 'ss', 'taskset', 'openssl'];
const MTLS_PEERS = ['nginx-mtls', 'nginx-l4-mtls', 'haproxy-mtls', 'stunnel-mtls'];

interface PathSummary {
  path: string;
  ka_c1?: { rps: number; p50_ms: number; p99_ms: number };
  ka_c32?: { rps_mean: number; p99_ms: number; proxy_cpu_us_per_req: number | null };
  new_conn_pooled?: { rps: number; proxy_cpu_us_per_req: number | null };
  new_conn_full_handshake?: { rps: number } | null;
  bulk?: { mb_per_s: number };
}

/** One figure compared across paths: where it sits in the summary and which way is better. */
const FIGURES: {
  name: string;
  get: (s: PathSummary) => number | null | undefined;
  lowerIsBetter: boolean;
}[] = [
  {
    name: 'proxy CPU µs/req (ka c32)',
    get: (s) => s.ka_c32?.proxy_cpu_us_per_req,
    lowerIsBetter: true,
  },
  { name: 'ka c32 req/s', get: (s) => s.ka_c32?.rps_mean, lowerIsBetter: false },
  { name: 'ka c1 req/s', get: (s) => s.ka_c1?.rps, lowerIsBetter: false },
  { name: 'ka c1 p99 ms', get: (s) => s.ka_c1?.p99_ms, lowerIsBetter: true },
  { name: 'ka c32 p99 ms', get: (s) => s.ka_c32?.p99_ms, lowerIsBetter: true },
  { name: 'new conn/s (pooled/resumed)', get: (s) => s.new_conn_pooled?.rps, lowerIsBetter: false },
  { name: 'new conn/s (full handshake)', get: (s) => s.new_conn_full_handshake?.rps, lowerIsBetter: false },
  { name: 'bulk MB/s', get: (s) => s.bulk?.mb_per_s, lowerIsBetter: false },
];

/** Issue 4's aims: figure, peer, and the comparison ours must win. */
const AIMS: { figure: string; peer: string }[] = [
  { figure: 'proxy CPU µs/req (ka c32)', peer: 'haproxy-mtls' },
  { figure: 'new conn/s (pooled/resumed)', peer: 'nginx-mtls' },
  { figure: 'bulk MB/s', peer: 'nginx-mtls' },
  { figure: 'ka c1 p99 ms', peer: 'nginx-mtls' },
];

function log(message: string) {
  console.error(`[proxy.bench] ${message}`);
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** The harness needs the peers and tools; install them (Debian, as root) when one is missing. */
function ensureDependencies() {
  const missing = TOOLS.filter((tool) => !hasCommand(tool));
  const hasStream = spawnSync('dpkg', ['-s', 'libnginx-mod-stream'], { stdio: 'ignore' }).status === 0;
  if (!hasStream) missing.push('libnginx-mod-stream');
  if (missing.length === 0) return;
  const installer = join(harnessDir, 'install-deps.sh');
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.join(', ')}: run \`sudo ${installer}\` first (Debian bookworm).`);
  }
  log(`missing ${missing.join(', ')}: running ${installer} (a few minutes)`);
  execFileSync(installer, { stdio: 'inherit' });
}

/** Memory figures of one process from /proc, in MB (10^6 bytes). */
function memoryMb(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const mb = (value: number) => Math.round((value * 1024) / 1e5) / 10;
  return {
    rssMb: mb(kb('VmRSS')),
    rssAnonMb: mb(kb('RssAnon')),
    rssFileMb: mb(kb('RssFile')),
    hwmMb: mb(kb('VmHWM')),
  };
}

/** RSS of a process started with `args` once `isReady(output)` and IDLE_SETTLE_MS have passed. */
async function measureIdleProcess(args: string[], isReady: (output: string) => boolean, what: string) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const started = Date.now();
  while (!isReady(output)) {
    if (child.exitCode !== null || Date.now() - started > 20_000) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not start:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  await new Promise((done) => setTimeout(done, IDLE_SETTLE_MS));
  const memory = memoryMb(child.pid!);
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  await exited;
  return { ...memory, settleMs: IDLE_SETTLE_MS, node: process.version };
}

/**
 * One sidecar as it runs in a pod (an inbound and an outbound listener, admin on, static
 * credentials, the Node flags every launcher gives it), idle: RSS once it has listened and settled
 * for IDLE_SETTLE_MS. Beside it, the floor: a bare Node mTLS server with the same flags
 * (idle-node-floor.ts), which says how much of that is Node itself.
 */
async function measureIdleSidecar() {
  const dir = mkdtempSync(join(tmpdir(), 'mutual-idle-sidecar-'));
  try {
    execFileSync(join(harnessDir, 'gen-certs.sh'), [join(dir, 'pki')], { stdio: 'ignore' });
    const pki = (name: string) => join(dir, 'pki', name);
    const sidecar = await measureIdleProcess(
      [
        ...[...SIDECAR_NODE_FLAGS, mutualBin, 'proxy', 'run'],
        ...['--cert', pki('server-chain.crt'), '--key', pki('server.key')],
        ...['--bundle', pki('ca.crt'), '--inbound', '127.0.0.1:0=18080', '--mode', 'STRICT'],
        ...['--upstream', '127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/server@127.0.0.1:18913'],
        ...['--admin-listen', '127.0.0.1:0'],
      ],
      (output) => output.includes('mutual proxy listening') && output.includes('credentials loaded'),
      'the idle sidecar',
    );
    const nodeFloor = await measureIdleProcess(
      [...SIDECAR_NODE_FLAGS, floorScript, pki('server-chain.crt'), pki('server.key'), pki('ca.crt')],
      (output) => output.includes('ready'),
      'the bare Node mTLS server',
    );
    return { ...sidecar, nodeFloor };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the harness with ours plugged in; resolves with its markdown. */
function runHarness(jsonPath: string): Promise<string> {
  const ours = `${process.execPath} ${pairScript}`;
  const args = [join(harnessDir, 'run.sh'), '--workdir', workdir, '--json', jsonPath];
  args.push('--ours', ours, '--ours-name', OURS_NAME);
  log(`bash ${args.map((arg) => (arg.includes(' ') ? `'${arg}'` : arg)).join(' ')}`);
  // The client half sends HTTP/1 requests over pooled mTLS connections (new ones resume the TLS session).
  const env = { ...process.env, OURS_REUSE: process.env.OURS_REUSE ?? 'pool' };
  // As root, in a network namespace of its own: a private loopback, so the harness's fixed ports
  // (18080, 18101–18913) cannot collide with anything else running on this machine.
  const isolated = process.env.PROXY_BENCH_NETNS !== '0' && process.getuid?.() === 0 && hasCommand('unshare');
  const [command, commandArgs] = isolated
    ? ['unshare', ['--net', 'bash', '-c', 'ip link set lo up && exec bash "$@"', 'run.sh', ...args]]
    : ['bash', args];
  log(isolated ? 'in a private network namespace (PROXY_BENCH_NETNS=0 to not)' : 'on the host network');
  const child = spawn(command, commandArgs as string[], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let markdown = '';
  child.stdout.on('data', (chunk) => {
    markdown += chunk;
  });
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      if (code === 0) done(markdown);
      else fail(new Error(`run.sh failed (${signal ?? `exit ${code}`}); logs in ${workdir}/logs`));
    });
  });
}

/** What proxy-pair logged about its halves' memory when the harness stopped it (after all the load). */
function memoryAfterLoad(): Record<string, { rssKb: number; hwmKb: number }> | undefined {
  const file = join(workdir, 'logs', 'ours.out');
  if (!existsSync(file)) return undefined;
  const line = /^proxy-pair: stopping on \w+; memory (.*)$/m.exec(readFileSync(file, 'utf8'));
  return line ? JSON.parse(line[1]!) : undefined;
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

function compare(summary: PathSummary[]) {
  const ours = summary.find((entry) => entry.path === 'ours');
  if (!ours) return undefined;
  const peers = summary.filter((entry) => MTLS_PEERS.includes(entry.path));
  const rows = FIGURES.map((figure) => {
    const mine = figure.get(ours) ?? null;
    const byPeer = Object.fromEntries(
      peers.map((peer) => {
        const theirs = figure.get(peer) ?? null;
        return [peer.path, { value: theirs, ratio: mine !== null && theirs ? round(mine / theirs) : null }];
      }),
    );
    return { figure: figure.name, lowerIsBetter: figure.lowerIsBetter, ours: mine, peers: byPeer };
  });
  const aims = AIMS.map((aim) => {
    const row = rows.find((entry) => entry.figure === aim.figure)!;
    const peer = row.peers[aim.peer];
    const ratio = peer?.ratio ?? null;
    const met = ratio === null ? null : row.lowerIsBetter ? ratio <= 1 : ratio >= 1;
    return {
      aim: `${aim.figure} ${row.lowerIsBetter ? '≤' : '≥'} ${aim.peer}`,
      ours: row.ours,
      peer: peer?.value ?? null,
      ratio,
      met,
    };
  });
  return { rows, aims, peers: peers.map((peer) => peer.path) };
}

function comparisonMarkdown(
  comparison: NonNullable<ReturnType<typeof compare>>,
  idle: Awaited<ReturnType<typeof measureIdleSidecar>>,
  afterLoad: ReturnType<typeof memoryAfterLoad>,
): string {
  const show = (value: number | null | undefined) =>
    value === null || value === undefined ? '–' : String(Number(value.toPrecision(4)));
  const lines = [
    '',
    `## ${OURS_NAME} against issue 4's aims`,
    '',
    '| aim | ours | peer | ours ÷ peer | met |',
    '| --- | --- | --- | --- | --- |',
    ...comparison.aims.map(
      (aim) =>
        `| ${aim.aim} | ${show(aim.ours)} | ${show(aim.peer)} | ${show(aim.ratio)} | ${aim.met === null ? '–' : aim.met ? 'yes' : '**no**'} |`,
    ),
    `| idle sidecar RSS < ${IDLE_RSS_AIM_MB} MB | ${idle.rssMb} MB | bare Node mTLS server: ${idle.nodeFloor.rssMb} MB | | ${idle.rssMb < IDLE_RSS_AIM_MB ? 'yes' : '**no**'} |`,
    '',
    `### ${OURS_NAME}: figures and ours ÷ peer`,
    '',
    `| figure | ours | ${comparison.peers.map((peer) => `${peer} | ÷`).join(' | ')} |`,
    `| --- | --- | ${comparison.peers.map(() => '--- | ---').join(' | ')} |`,
    ...comparison.rows.map(
      (row) =>
        `| ${row.figure}${row.lowerIsBetter ? ' (lower is better)' : ''} | ${show(row.ours)} | ${comparison.peers
          .map((peer) => `${show(row.peers[peer]?.value)} | ${show(row.peers[peer]?.ratio)}`)
          .join(' | ')} |`,
    ),
    '',
    '### Memory',
    '',
    `- One idle sidecar (inbound + outbound listener + admin, static credentials, ${idle.settleMs / 1000} s after start, Node ${idle.node}): ` +
      `RSS ${idle.rssMb} MB (anonymous ${idle.rssAnonMb} MB, file-backed ${idle.rssFileMb} MB), peak ${idle.hwmMb} MB.`,
    `- The floor, a bare Node mTLS server with the same Node and flags and none of Mutual's code (bench/idle-node-floor.ts: ` +
      `node:tls server verifying client certificates, a client context, two node:http listeners, node:http2 loaded): ` +
      `RSS ${idle.nodeFloor.rssMb} MB (anonymous ${idle.nodeFloor.rssAnonMb} MB, file-backed ${idle.nodeFloor.rssFileMb} MB). ` +
      `Mutual's own share of the idle sidecar: ${round(idle.rssMb - idle.nodeFloor.rssMb, 1)} MB.`,
    afterLoad
      ? `- The benchmark's halves when the harness stopped them (after all the load): ${Object.entries(
          afterLoad,
        )
          .map(
            ([half, m]) =>
              `${half} RSS ${round((m.rssKb * 1024) / 1e6, 1)} MB, peak ${round((m.hwmKb * 1024) / 1e6, 1)} MB`,
          )
          .join('; ')}.`
      : '- The halves did not report their memory at shutdown (see logs/ours.out).',
    '',
  ];
  return lines.join('\n');
}

async function main() {
  ensureDependencies();
  if (!existsSync(pairScript)) throw new Error(`${pairScript} is missing: run \`npm run build\` first.`);
  log('idle sidecar memory');
  const idle = await measureIdleSidecar();
  log(`idle sidecar RSS ${idle.rssMb} MB; a bare Node mTLS server ${idle.nodeFloor.rssMb} MB`);
  const jsonPath = join(workdir, 'results.json');
  const markdown = await runHarness(jsonPath);
  const results = JSON.parse(readFileSync(jsonPath, 'utf8')) as { summary: PathSummary[] };
  const comparison = compare(results.summary);
  const afterLoad = memoryAfterLoad();
  await mkdir(resultsDir, { recursive: true });
  const extra = comparison
    ? comparisonMarkdown(comparison, idle, afterLoad)
    : `\n## ${OURS_NAME} was not measured\n\nThe harness skipped it: see ${workdir}/logs/ours.out and the log above.\n`;
  await writeFile(join(resultsDir, 'proxy-latest.md'), `${markdown}${extra}`);
  await writeFile(
    join(resultsDir, 'proxy-latest.json'),
    `${JSON.stringify({ ...results, mutual: { idleSidecar: idle, memoryAfterLoad: afterLoad, comparison } }, null, 2)}\n`,
  );
  console.log(markdown);
  console.log(extra);
  log(`wrote ${join(resultsDir, 'proxy-latest.md')} and proxy-latest.json; harness work dir ${workdir}`);
  if (!comparison) process.exit(1);
}

main().catch((error: Error) => {
  console.error(`[proxy.bench] ${error.message}`);
  process.exit(1);
});
