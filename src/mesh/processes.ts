import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, fchownSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import type { RuntimeProcess } from './runtime.ts';

export interface LoggedProcess extends RuntimeProcess {
  readonly child: ChildProcess;
  /**
   * Resolves when the process has exited, with its code or signal; `startError` when it could not
   * be started at all (e.g. `spawn foo ENOENT`: no such command), with code 127 as a shell says.
   */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; startError?: string }>;
  /** The log's size when the process was spawned: what it wrote starts there (logs are appended across runs). */
  readonly logStartByte: number;
}

/**
 * Starts a process in its own process group (so a Ctrl-C in the terminal reaches only the
 * supervisor, and stopping it stops whatever it started), stdout and stderr appended to `log`.
 */
export function spawnLogged(spec: {
  argv: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: string;
  /**
   * Who owns the log, when the process runs as another user: programs that write to /dev/stdout
   * or /dev/stderr (nginx's `access_log /dev/stdout`, many container images) open it again, which
   * a root-owned 0600 file refuses ("Permission denied").
   */
  logOwner?: { uid: number; gid: number };
}): LoggedProcess {
  const fd = openSync(spec.log, 'a', 0o600);
  let child: ChildProcess;
  let logStartByte = 0;
  try {
    if (spec.logOwner) fchownSync(fd, spec.logOwner.uid, spec.logOwner.gid);
    logStartByte = fstatSync(fd).size;
    child = spawn(spec.argv[0]!, spec.argv.slice(1), {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  const exited: LoggedProcess['exited'] = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ code: 127, signal: null, startError: error.message }));
  });
  const pid = child.pid ?? -1;
  return {
    child,
    exited,
    pid,
    startTicks: processStartTicks(pid) ?? 0,
    log: spec.log,
    logStartByte,
    argv: spec.argv,
  };
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or undefined if gone. */
export function processStartTicks(pid: number): number | undefined {
  if (!(pid > 0)) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** True while the process recorded as `pid` started at `startTicks` still runs. */
export function isRunning(process: { pid: number; startTicks: number }): boolean {
  const ticks = processStartTicks(process.pid);
  return ticks !== undefined && (process.startTicks === 0 || ticks === process.startTicks);
}

/**
 * True when the recorded process is there but stopped (`kill -STOP`, Ctrl-Z, a debugger: state T
 * or t in /proc/PID/stat): its ports accept connections and never answer.
 */
export function isStopped(process: { pid: number; startTicks: number }): boolean {
  if (!(process.pid > 0) || !isRunning(process)) return false;
  try {
    const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    return /^[Tt]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '');
  } catch {
    return false;
  }
}

/** True while any process of the group still exists. */
function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Stops a process group: SIGTERM, then SIGKILL after `graceMs`. A leader pid that now belongs to
 * another process (different start time) is left alone; a group that outlived its leader is
 * still ours, since Linux never hands out the id of a live process group.
 */
export async function stopProcessGroup(
  recorded: { pid: number; startTicks: number },
  graceMs = 5000,
): Promise<'stopped' | 'killed' | 'not-running'> {
  const ticks = processStartTicks(recorded.pid);
  if (ticks !== undefined && recorded.startTicks !== 0 && ticks !== recorded.startTicks) return 'not-running';
  if (!isGroupAlive(recorded.pid)) return 'not-running';
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-recorded.pid, name);
    } catch {
      // Already gone.
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isGroupAlive(recorded.pid)) return 'stopped';
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  signal('SIGKILL');
  while (isGroupAlive(recorded.pid) && Date.now() < deadline + 2000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return 'killed';
}

/**
 * The last `lines` lines of a log file, for error messages; only those written from `fromByte` on
 * (a process's `logStartByte`: what an earlier run appended is not this run's cause).
 */
export async function tailFile(
  path: string,
  {
    lines = 15,
    maxBytes = 16 * 1024,
    fromByte = 0,
  }: { lines?: number; maxBytes?: number; fromByte?: number } = {},
): Promise<string> {
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(fromByte, size - maxBytes);
      if (start >= size) return '';
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

/**
 * Free ports on `host` (127.0.0.1 unless told), each bound for a moment to see it is free, then
 * released for the processes that will bind them. They are picked outside the kernel's ephemeral
 * range: a port from there (what `listen(0)` returns) can be handed to any process in the seconds
 * before ours bind it, as the source port of an outgoing connection (even one of the mesh's own)
 * or another server's `listen(0)`, and that process then fails with EADDRINUSE. One at a time, not
 * all held open at once: a 40-service mesh whose services all call each other needs 1,684 ports,
 * and holding them took as many file descriptors, past a 1,024 limit (`up` failed with EMFILE).
 */
export async function allocateLoopbackPorts(
  count: number,
  host = '127.0.0.1',
  random: () => number = Math.random,
): Promise<number[]> {
  const candidates = portsOutsideEphemeralRange(readEphemeralPortRange());
  const chosen = new Set<number>();
  // Random tries in that range; any port the kernel picks when the range is too small or full.
  for (let tries = 0; chosen.size < count; tries++) {
    const port =
      candidates && tries < count * 20
        ? candidates.low + Math.floor(random() * (candidates.high - candidates.low + 1))
        : 0;
    if (port !== 0 && chosen.has(port)) continue;
    const server = await listenOrUndefined(host, port);
    if (!server) continue;
    chosen.add((server.address() as { port: number }).port);
    await new Promise((resolve) => server.close(resolve));
  }
  return [...chosen];
}

/** Below this, ports are left alone: well-known and registered services users run live there. */
const LOWEST_MESH_PORT = 20_000;

/** The kernel's ephemeral range (net.ipv4.ip_local_port_range, also used for IPv6). */
export function readEphemeralPortRange(): { low: number; high: number } | undefined {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return Number.isInteger(low) && Number.isInteger(high) ? { low: low!, high: high! } : undefined;
  } catch {
    return undefined;
  }
}

/** The larger stretch of unprivileged ports above LOWEST_MESH_PORT beside the ephemeral range. */
export function portsOutsideEphemeralRange(
  ephemeral: { low: number; high: number } | undefined,
): { low: number; high: number } | undefined {
  const { low, high } = ephemeral ?? { low: 32_768, high: 60_999 };
  const below = { low: LOWEST_MESH_PORT, high: low - 1 };
  const above = { low: Math.max(high + 1, LOWEST_MESH_PORT), high: 65_535 };
  const size = (range: { low: number; high: number }) => range.high - range.low + 1;
  const larger = size(below) >= size(above) ? below : above;
  // Too few ports there to pick at random without colliding: let the kernel choose.
  return size(larger) >= 1_000 ? larger : undefined;
}

function listenOrUndefined(host: string, port: number): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('listening', () => resolve(server));
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (port !== 0 && (error.code === 'EADDRINUSE' || error.code === 'EACCES')) resolve(undefined);
      else reject(error);
    });
    server.listen(port, host);
  });
}
