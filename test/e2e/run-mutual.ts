import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../src/clock.ts';

/** The repository root, found from the compiled test's location (dist/test/e2e/...). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the test');
    dir = parent;
  }
  return dir;
}

/** A running `mutual up`, started as a user starts it. */
export interface MeshUp {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr together. */
  output(): string;
  /** SIGTERM, then wait for it to exit (nothing to do once it has). */
  stop(): Promise<void>;
}

/**
 * Starts `mutual up ARGS` from the repository root (NO_COLOR) and resolves once its output
 * includes `until` (by default the last of the hints after the ready line), or once it exits.
 * Output is read with listeners for as long as it runs: a reader that stopped would close up's
 * stdout under it.
 */
export async function startMeshUp(args: readonly string[], until = 'stops everything'): Promise<MeshUp> {
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'mutual.js'), 'up', ...args], {
    cwd: repoRoot(),
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  let output = '';
  await new Promise<void>((resolve) => {
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(until)) resolve();
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', () => resolve());
  });
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface MutualRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `mutual` binary (bin/mutual.js) as a user would, with a timeout (and `input` on its stdin). */
export function runMutual(
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number; input?: Buffer | string } = {},
): Promise<MutualRun> {
  const bin = join(repoRoot(), 'bin', 'mutual.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? repoRoot(),
      env: { ...process.env, NO_COLOR: '1' },
      timeout: options.timeoutMs ?? 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (options.input !== undefined) child.stdin.end(options.input);
  });
}

/**
 * `mutual ARGS` in-process (runCli), colour off, stdout and stderr captured apart: for tests that
 * give it a clock or read its output without a process per call. The CLI is imported on first use,
 * so tests that only spawn `mutual` do not load it.
 */
export async function runMutualInProcess(
  args: readonly string[],
  options: { cwd?: string; clock?: Clock } = {},
): Promise<MutualRun & { code: number }> {
  const [{ runCli }, { systemClock }] = await Promise.all([
    import('../../src/cli/index.ts'),
    import('../../src/clock.ts'),
  ]);
  let stdout = '';
  let stderr = '';
  const code = await runCli([...args], {
    clock: options.clock ?? systemClock,
    cwd: options.cwd ?? process.cwd(),
    isColor: false,
    write: (text) => {
      stdout += text;
    },
    writeError: (text) => {
      stderr += text;
    },
    setExitCode: () => {},
    untilShutdown: () => new Promise(() => {}),
  });
  return { code, stdout, stderr };
}

/** `mutual ca create` for trust domain cluster.local into `out`; fails with mutual's stderr otherwise. */
export async function createCa(out: string): Promise<void> {
  const created = await runMutual(['ca', 'create', '--trust-domain', 'cluster.local', '--out', out]);
  assert.equal(created.code, 0, created.stderr);
}

/** `mutual identity token create` for NS/SA with the identity service state in `stateDir`. */
export async function mintJoinToken(stateDir: string, ns: string, sa: string): Promise<string> {
  const minted = await runMutual([
    'identity',
    'token',
    'create',
    '--ns',
    ns,
    '--sa',
    sa,
    '--state-dir',
    stateDir,
  ]);
  assert.equal(minted.code, 0, minted.stderr);
  return minted.stdout.trim();
}

/** A `mutual … serve` daemon running as a real process. */
export interface MutualDaemon {
  readonly child: ChildProcess;
  readonly apiUrl: URL;
  readonly adminUrl: URL;
  /** Everything it has written so far, stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `mutual <args>` (a daemon that prints `listening on https://… (admin http://…)`, as
 * identity serve and destination serve do) and resolves once it has printed its addresses.
 */
export async function startMutualDaemon(
  args: readonly string[],
  what: string,
  options: { fileLimit?: number } = {},
): Promise<MutualDaemon> {
  const command = [process.execPath, join(repoRoot(), 'bin', 'mutual.js'), ...args];
  // `fileLimit`: run under `prlimit --nofile=N:N` (util-linux), to reach the descriptor limit.
  const limited =
    options.fileLimit === undefined
      ? command
      : ['prlimit', `--nofile=${options.fileLimit}:${options.fileLimit}`, ...command];
  const child = spawn(limited[0]!, limited.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const listening = new Promise<RegExpExecArray>((resolve, reject) => {
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (https:\/\/\S+) \(admin (http:\/\/\S+)\)/.exec(output);
      if (match) resolve(match);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', () => reject(new Error(`${what} did not start: ${output}`)));
  });
  const match = await listening;
  return {
    child,
    apiUrl: new URL(match[1]!),
    adminUrl: new URL(match[2]!),
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

export type IdentityServiceProcess = MutualDaemon;

/**
 * Starts `mutual identity serve` as a real process and resolves once it prints its addresses.
 * `extraArgs` override the defaults (loopback, ports from 0).
 */
export function startIdentityService(
  caDir: string,
  stateDir: string,
  extraArgs: readonly string[] = [],
): Promise<IdentityServiceProcess> {
  return startMutualDaemon(
    [
      ...['identity', 'serve', '--ca', caDir, '--state-dir', stateDir],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...extraArgs],
    ],
    'identity service',
  );
}

/**
 * `perAddress` TCP connections to `url` from each of `addresses` that never send a byte, all
 * connected (or already closed by the server): how many the server has closed, and a release.
 */
export async function holdSilentConnections(url: URL, addresses: readonly string[], perAddress: number) {
  const sockets: Socket[] = [];
  let closed = 0;
  for (const localAddress of addresses) {
    await Promise.all(
      Array.from(
        { length: perAddress },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect({ host: url.hostname, port: Number(url.port), localAddress });
            sockets.push(socket);
            socket.once('connect', () => resolve());
            socket.once('error', () => {});
            socket.once('close', () => {
              closed++;
              resolve();
            });
          }),
      ),
    );
  }
  return {
    closed: () => closed,
    release: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}
