import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

export interface MutualRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `mutual` binary (bin/mutual.js) as a user would, with a timeout. */
export function runMutual(
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
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
  });
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

export interface IdentityServiceProcess {
  readonly child: ChildProcess;
  readonly apiUrl: URL;
  readonly adminUrl: URL;
  stop(): Promise<void>;
}

/**
 * Starts `mutual identity serve` as a real process and resolves once it prints its addresses.
 * `extraArgs` override the defaults (loopback, ports from 0).
 */
export async function startIdentityService(
  caDir: string,
  stateDir: string,
  extraArgs: readonly string[] = [],
): Promise<IdentityServiceProcess> {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot(), 'bin', 'mutual.js'),
      ...['identity', 'serve', '--ca', caDir, '--state-dir', stateDir],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...extraArgs],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  for await (const chunk of child.stdout!) {
    output += String(chunk);
    const match = /listening on (https:\/\/\S+) \(admin (http:\/\/\S+)\)/.exec(output);
    if (match) {
      child.stdout!.resume();
      return {
        child,
        apiUrl: new URL(match[1]!),
        adminUrl: new URL(match[2]!),
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          await once(child, 'exit');
        },
      };
    }
  }
  throw new Error(`identity service did not start: ${output}`);
}
