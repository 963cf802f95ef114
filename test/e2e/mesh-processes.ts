// What the tests of a running `mutual up` that kills and restarts processes share: small apps,
// runtime.json, whether a pid lives, a call through a client's sidecar, and waiting for a process
// to be replaced.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

export interface RunningMesh {
  readonly state: string;
  readonly up: MeshUp;
  /** Stops up, then `mutual down` (for what it left), and removes the directory. */
  stop(): Promise<void>;
}

/** `mutual up` of a mesh.yaml made of `lines`, in a temporary directory named after `prefix`, once it is up. */
export async function upMeshFile(prefix: string, lines: readonly string[]): Promise<RunningMesh> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const state = join(dir, 'state');
  const file = join(dir, 'mesh.yaml');
  await writeFile(file, [...lines, ''].join('\n'));
  const up = await startMeshUp(['-f', file, '--state-dir', state]);
  const stop = async () => {
    await up.stop();
    await runMutual(['down', '--state-dir', state]);
    await rm(dir, { recursive: true, force: true });
  };
  if (!up.output().includes('The mesh is up')) {
    await stop();
    assert.fail(`the mesh did not come up:\n${up.output()}`);
  }
  return { state, up, stop };
}

/** An app that answers every request with `text` on $PORT. */
export function helloServer(text: string): string {
  return `require('node:http').createServer((q, s) => s.end(${JSON.stringify(text)})).listen(Number(process.env.PORT), '127.0.0.1')`;
}

/** An app that only stays up: a client that calls others. */
export const IDLE_APP = 'setInterval(() => {}, 1000)';

/** A process as runtime.json records it. */
export interface RecordedProcess {
  pid: number;
  log: string;
  restarts?: number;
  lastExit?: { code: number | null; signal: string | null; at: string; reason?: string; message?: string };
}

export async function readRuntime<Runtime>(stateDir: string): Promise<Runtime> {
  return JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8'));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `GET path` at a client's upstream port (through its sidecar, over mTLS): "STATUS BODY", or the error. */
export async function callThrough(localAddress: string, path = '/'): Promise<string> {
  try {
    const response = await fetch(`http://${localAddress}${path}`, { signal: AbortSignal.timeout(3000) });
    return `${response.status} ${await response.text()}`;
  } catch (error) {
    return String(error);
  }
}

/**
 * Waits until `currentPid` names a new, live process instead of `before`, and asserts `before` is
 * gone. Longer than waitUntil's 10 s: a liveness window, the first restart's pause and a loaded
 * machine add up.
 */
export async function awaitReplaced(
  what: string,
  before: number,
  currentPid: () => Promise<number>,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  let after = before;
  while (after === before || !isAlive(after)) {
    assert.ok(Date.now() < deadline, `${what} started again (output: ${output()})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    after = await currentPid();
  }
  assert.ok(!isAlive(before), `the old ${what} (pid ${before}) is gone`);
}

/** Lets go of processes a failed assertion left stopped (SIGSTOP), so `down` can stop them. */
export function continueStopped(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // Killed, as it should be.
    }
  }
}
