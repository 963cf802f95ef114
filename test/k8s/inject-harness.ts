// `mutual inject` run in-process as users run it (runCli), on a file or on text written to a
// fresh temp directory: exit code, stdout and stderr.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, runMutualInProcess } from '../e2e/run-mutual.ts';

/** The anchors of the inject goldens (a root from `mutual ca create`). */
export const INJECT_ANCHORS_FILE = join(repoRoot(), 'test', 'k8s', 'golden', 'inject-trust-anchors.pem');

export interface InjectRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `mutual inject FILE --trust-anchors-file … ARGS` in `cwd`. */
export function runInject(file: string, cwd: string, args: readonly string[] = []): Promise<InjectRun> {
  return runMutualInProcess(['inject', file, '--trust-anchors-file', INJECT_ANCHORS_FILE, ...args], { cwd });
}

/** `text` written as `file` in a temp directory, injected, the directory removed. */
export async function injectText(
  file: string,
  text: string,
  args: readonly string[] = [],
): Promise<InjectRun> {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, file), text);
    return await runInject(file, dir, args);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
