// The plug-in command for the shared sidecar benchmark (../shared/bench/run.sh --ours): starts both
// halves of a Mutual proxy pair as `mutual proxy run` child processes from the BENCH_* environment
// the harness sets, stays in the foreground, and forwards SIGTERM / SIGINT to both.
//
//   client half: plain on 127.0.0.1:BENCH_CLIENT_PORT → mTLS to 127.0.0.1:BENCH_SERVER_PORT (must be BENCH_SERVER_ID),
//                HTTP/1 requests over pooled connections (what the app gets in production);
//                plain on 127.0.0.1:BENCH_CLIENT_NOPOOL_PORT (when set) → the same, with
//                --upstream-full-handshake: a new connection and a full handshake per app connection
//   server half: mTLS on 127.0.0.1:BENCH_SERVER_PORT (STRICT) → plain to 127.0.0.1:BENCH_UPSTREAM_PORT
//
// Each half runs with the sidecar Node flags every launcher uses (SIDECAR_NODE_FLAGS).
// Extra knobs (environment, optional): PROXY_PAIR_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"),
// PROXY_PAIR_CLIENT_ARGS / PROXY_PAIR_SERVER_ARGS (more `proxy run` flags for one half).
//
// The halves run in their own process groups: the harness signals our whole group, and a second
// SIGTERM would cut a draining `mutual` short (and lose a --cpu-prof profile). So this process is
// the only one that signals them, once, and kills whatever is left after KILL_AFTER_MS — before
// the harness's own SIGKILL at 5 s.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SIDECAR_NODE_FLAGS } from '../src/config/index.ts';

const KILL_AFTER_MS = 4_000;
const DRAIN_TIMEOUT = '2s';
const mutualBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mutual.js');

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(
      `proxy-pair: ${name} is not set. Run this through the shared harness (run.sh --ours '…'), which sets every BENCH_* variable.`,
    );
    process.exit(2);
  }
  return value;
}

function words(name: string): string[] {
  return (process.env[name] ?? '').split(/\s+/).filter((word) => word.length > 0);
}

const upstreamHost = process.env.BENCH_UPSTREAM_HOST ?? '127.0.0.1';
if (upstreamHost !== '127.0.0.1') {
  console.error(
    `proxy-pair: BENCH_UPSTREAM_HOST is ${upstreamHost}, but an inbound listener always forwards to the app on 127.0.0.1. Run the upstream on 127.0.0.1.`,
  );
  process.exit(2);
}
const env = {
  clientPort: required('BENCH_CLIENT_PORT'),
  serverPort: required('BENCH_SERVER_PORT'),
  upstreamPort: required('BENCH_UPSTREAM_PORT'),
  ca: required('BENCH_CA'),
  clientCert: required('BENCH_CLIENT_CERT'),
  clientKey: required('BENCH_CLIENT_KEY'),
  serverCert: required('BENCH_SERVER_CERT'),
  serverKey: required('BENCH_SERVER_KEY'),
  serverId: required('BENCH_SERVER_ID'),
  clientNoPoolPort: process.env.BENCH_CLIENT_NOPOOL_PORT,
};
const adminListen = process.env.PROXY_PAIR_ADMIN_LISTEN ?? '127.0.0.1:0';
const common = ['--admin-listen', adminListen, '--mode', 'STRICT', '--drain-timeout', DRAIN_TIMEOUT];

const halves = {
  server: [
    ...['--cert', env.serverCert, '--key', env.serverKey, '--bundle', env.ca],
    ...['--inbound', `127.0.0.1:${env.serverPort}=${env.upstreamPort}`],
    ...common,
    ...words('PROXY_PAIR_SERVER_ARGS'),
  ],
  client: [
    ...['--cert', env.clientCert, '--key', env.clientKey, '--bundle', env.ca],
    ...['--upstream', `127.0.0.1:${env.clientPort}=${env.serverId}@127.0.0.1:${env.serverPort}`],
    ...(env.clientNoPoolPort
      ? [
          ...['--upstream', `127.0.0.1:${env.clientNoPoolPort}=${env.serverId}@127.0.0.1:${env.serverPort}`],
          ...['--upstream-full-handshake', `127.0.0.1:${env.clientNoPoolPort}`],
        ]
      : []),
    ...common,
    ...words('PROXY_PAIR_CLIENT_ARGS'),
  ],
};

const children = new Map<string, ChildProcess>();
let isStopping = false;
let exitCode = 0;
let listening = 0;

/** VmRSS / VmHWM of a process in KiB, from /proc (undefined once it is gone). */
function memoryKb(pid: number | undefined): { rssKb: number; hwmKb: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
  } catch {
    return undefined;
  }
}

function start(name: string, args: string[]): ChildProcess {
  // process.execPath is the Node 24 this runs on: no hop through bin/mutual.js's Node-version check.
  const child = spawn(
    process.execPath,
    [...SIDECAR_NODE_FLAGS, ...words('PROXY_PAIR_NODE_ARGS'), mutualBin, 'proxy', 'run', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on('line', (line) => {
      console.log(`[${name}] ${line}`);
      if (line.startsWith('mutual proxy listening') && ++listening === 2)
        console.log(
          `proxy-pair: both halves listening (pids ${[...children.values()].map((c) => c.pid).join(' ')})`,
        );
    });
  }
  child.on('exit', (code, signal) => {
    children.delete(name);
    console.log(`proxy-pair: ${name} half exited (${signal ?? `code ${code}`})`);
    if (!isStopping) {
      exitCode = 1;
      stop('SIGTERM');
    }
    if (children.size === 0) process.exit(exitCode);
  });
  children.set(name, child);
  return child;
}

function stop(signal: NodeJS.Signals) {
  if (isStopping) return;
  isStopping = true;
  // Memory after whatever load the harness ran, before the halves start draining.
  const memory = Object.fromEntries([...children].map(([name, child]) => [name, memoryKb(child.pid)]));
  console.log(`proxy-pair: stopping on ${signal}; memory ${JSON.stringify(memory)}`);
  for (const child of children.values()) child.kill('SIGTERM');
  setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
  }, KILL_AFTER_MS).unref();
  if (children.size === 0) process.exit(exitCode);
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => stop(signal));
// Last resort if this process ends some other way: never leave a half holding the ports.
process.on('exit', () => {
  for (const child of children.values()) child.kill('SIGKILL');
});

console.log(`proxy-pair: ${mutualBin} proxy run ×2 (${process.execPath}, node ${process.version})`);
start('server', halves.server);
start('client', halves.client);
