import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { runCommand } from './commands.ts';
import { APP_UID } from './plan-netns.ts';

// A pod's app runs as uid 2103, not as the root that runs `mutual up`: its working directory (and a
// program given by path) must be open to that uid, which a home directory often is not (0750 on
// Ubuntu since 21.04, /root 0700). Asked of the kernel itself, as that uid, before anything starts.

/** Why the app uid cannot work in `cwd` or run `program` from it, or undefined. */
export async function podAppAccessProblem(
  cwd: string,
  program: string,
  uid = APP_UID,
): Promise<string | undefined> {
  if (!(await canAs(uid, ['-x', cwd]))) {
    const blocker = await firstClosedDirectory(cwd, uid);
    const where = blocker === cwd ? cwd : `${blocker}, on the way to its working directory ${cwd}`;
    const mode = await describeMode(blocker);
    return `the app runs as uid ${uid} in its pod and cannot enter ${where}${mode}; let other users in (\`chmod o+x ${blocker}\`), move the project where they can go (e.g. under /srv or /opt), or use --isolation loopback (apps run as you)`;
  }
  if (program.includes('/')) {
    const file = resolve(cwd, program);
    if (!(await canAs(uid, ['-r', file, '-a', '-x', file])))
      return `the app runs as uid ${uid} in its pod and cannot read and run ${file}${await describeMode(file)}; \`chmod o+rx ${file}\``;
  }
  return undefined;
}

/** `test ARGS` as `uid`, with no supplementary groups. */
async function canAs(uid: number, testArgs: string[]): Promise<boolean> {
  const result = await runCommand('setpriv', [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    '--clear-groups',
    'test',
    ...testArgs,
  ]);
  return result.code === 0;
}

/** The first directory from / down to `dir` that `uid` cannot enter (or `dir` itself). */
async function firstClosedDirectory(dir: string, uid: number): Promise<string> {
  const parts = dir.split(sep).filter(Boolean);
  for (let index = 1; index <= parts.length; index++) {
    const path = `${sep}${parts.slice(0, index).join(sep)}`;
    if (!(await canAs(uid, ['-x', path]))) return path;
  }
  return dir;
}

async function describeMode(path: string): Promise<string> {
  const found = await stat(path).catch(() => undefined);
  if (!found) return '';
  const mode = (found.mode & 0o777).toString(8).padStart(4, '0');
  return ` (mode ${mode}, owner uid ${found.uid}, group gid ${found.gid})`;
}
