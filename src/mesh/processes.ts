import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { RuntimeProcess } from './runtime.ts';

export interface LoggedProcess extends RuntimeProcess {
  readonly child: ChildProcess;
  /**
   * Resolves when the process has exited, with its code or signal; `startError` when it could not
   * be started at all (e.g. `spawn foo ENOENT`: no such command), with code 127 as a shell says.
   */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; startError?: string }>;
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
}): LoggedProcess {
  const fd = openSync(spec.log, 'a', 0o600);
  let child: ChildProcess;
  try {
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
  return { child, exited, pid, startTicks: processStartTicks(pid) ?? 0, log: spec.log, argv: spec.argv };
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

/** The last `lines` lines of a log file, for error messages. */
export async function tailFile(path: string, lines = 15, maxBytes = 16 * 1024): Promise<string> {
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - maxBytes);
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
 * Free ports on `host` (127.0.0.1 unless told), all held open at once so they differ, then
 * released for the processes that will bind them.
 */
export async function allocateLoopbackPorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    for (const server of servers) server.listen(0, host);
    await Promise.all(servers.map((server) => once(server, 'listening')));
    return servers.map((server) => (server.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}
