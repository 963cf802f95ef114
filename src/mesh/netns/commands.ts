import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { MutualError } from '../../errors.ts';

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion, collecting its output; never rejects on a non-zero exit. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 30_000,
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdin.on('error', () => {}); // a tool that exits early closes stdin; its status says why
    child.stdin.end(options.input ?? '');
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a command that must succeed; a failure is MUTUAL_MESH_NETNS_FAILED naming it and its output. */
export async function mustRun(
  command: string,
  args: readonly string[],
  options: { input?: string } = {},
): Promise<string> {
  let result: CommandResult;
  try {
    result = await runCommand(command, args, options);
  } catch (error) {
    throw new MutualError(
      'MUTUAL_MESH_NETNS_FAILED',
      `${command} could not start: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (result.code !== 0) {
    const output = result.stderr.trim() || result.stdout.trim() || `exit code ${result.code}`;
    throw new MutualError('MUTUAL_MESH_NETNS_FAILED', `${command} ${args.join(' ')} failed: ${output}`, {
      detail: { command, exitCode: result.code ?? -1 },
    });
  }
  return result.stdout;
}

/** `ip ARGS`, which must succeed. */
export function ip(args: readonly string[]): Promise<string> {
  return mustRun('ip', args);
}

/** True when an executable of this name is on PATH. */
export function hasCommand(command: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
