import { readFile, stat } from 'node:fs/promises';
import { NETNS_RUN_DIR } from './namespaces.ts';

// Whether an app inside a pod listens on a port, seen from the host without entering the pod:
// /proc/PID/net/tcp lists the sockets of PID's network namespace.

/**
 * Undefined when process `pid` is inside namespace `netns` and something there listens on TCP
 * `port`; otherwise what is missing.
 */
export async function podListenProblem(
  pid: number,
  netns: string,
  port: number,
): Promise<string | undefined> {
  try {
    const [own, pods] = await Promise.all([stat(`/proc/${pid}/ns/net`), stat(`${NETNS_RUN_DIR}/${netns}`)]);
    if (own.ino !== pods.ino || own.dev !== pods.dev) return `process ${pid} has not entered ${netns} yet`;
    const tables = await Promise.all(
      ['tcp', 'tcp6'].map((table) => readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')),
    );
    if (tables.some((table) => listensOn(table, port))) return undefined;
    return `nothing listens on port ${port} in ${netns}`;
  } catch (error) {
    return `cannot inspect process ${pid}: ${(error as Error).message}`;
  }
}

/** True when a /proc/net/tcp{,6} table has a socket in LISTEN (state 0A) on `port`. */
export function listensOn(table: string, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return table
    .split('\n')
    .slice(1)
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${hexPort}`) === true && fields[3] === '0A';
    });
}

/** Polls `podListenProblem` until it is solved, the process is gone, or the deadline passes. */
export async function waitForPodListen(
  pid: number,
  netns: string,
  port: number,
  options: { deadlineMs: number; isAlive: () => boolean },
): Promise<{ ok: true } | { ok: false; reason: 'timeout' | 'exited'; last: string }> {
  let delayMs = 10;
  for (;;) {
    const problem = await podListenProblem(pid, netns, port);
    if (problem === undefined) return { ok: true };
    if (!options.isAlive()) return { ok: false, reason: 'exited', last: problem };
    if (Date.now() >= options.deadlineMs) return { ok: false, reason: 'timeout', last: problem };
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(200, delayMs * 2);
  }
}
