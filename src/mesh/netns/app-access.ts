import { stat } from 'node:fs/promises';
import { delimiter, dirname, resolve, sep } from 'node:path';
import { runCommand } from './commands.ts';
import { APP_UID_BASE, PROXY_UID } from './plan-netns.ts';

// A pod's app runs as a uid of its own (APP_UID_BASE and up, one per pod), not as the root that runs
// `mutual up`: its working directory (and a program given by path) must be open to other users,
// which a home directory often is not (0750 on Ubuntu since 21.04, /root 0700). Asked of the kernel
// itself, as such a uid (one that owns nothing), before anything starts.

/** Why the app uid cannot work in `cwd` or run `program` from it, or undefined. */
export async function podAppAccessProblem(
  cwd: string,
  program: string,
  uid = APP_UID_BASE,
): Promise<string | undefined> {
  if (!(await canAs(uid, ['-x', cwd]))) {
    const blocker = await firstClosedDirectory(cwd, uid);
    const where = blocker === cwd ? cwd : `${blocker}, on the way to its working directory ${cwd}`;
    const mode = await describeMode(blocker);
    return `the app runs in its pod as a uid of its own (${uid} and up, not root) and cannot enter ${where}${mode}; let other users in (\`chmod o+x ${blocker}\`), move the project where they can go (e.g. under /srv or /opt), or use --isolation loopback (apps run as you)`;
  }
  if (program.includes('/')) {
    const file = resolve(cwd, program);
    if (!(await canAs(uid, ['-r', file, '-a', '-x', file])))
      return `the app runs in its pod as a uid of its own (${uid} and up, not root) and cannot read and run ${file}${await describeMode(file)}; \`chmod o+rx ${file}\``;
  }
  return undefined;
}

/**
 * Why the app uid cannot run the bare program name `program` that PATH (`path`, as root searches
 * it) gives first, or undefined: root's PATH often starts with directories under /root or a home
 * (pyenv's or nvm's shims, ~/.cargo/bin) that a pod's app cannot enter, and exec then fails there
 * even when a runnable one comes later on PATH (`bash: /root/.pyenv/shims/python3: Permission denied`).
 */
export async function podProgramProblem(
  program: string,
  cwd: string,
  path: string,
  uid = APP_UID_BASE,
): Promise<string | undefined> {
  if (program.includes('/')) return undefined;
  const candidates: string[] = [];
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const file = resolve(cwd, dir, program);
    if ((await stat(file).catch(() => undefined))?.isFile()) candidates.push(file);
  }
  if (candidates.length === 0 || (await canAs(uid, ['-x', candidates[0]!]))) return undefined;
  const first = candidates[0]!;
  const blocker = await firstClosedDirectory(dirname(first), uid);
  const closed =
    blocker === dirname(first) && (await canAs(uid, ['-x', blocker]))
      ? `${first}${await describeMode(first)} is closed to it`
      : `${blocker}${await describeMode(blocker)} is closed to it`;
  let usable: string | undefined;
  for (const file of candidates.slice(1)) {
    if (await canAs(uid, ['-x', file])) {
      usable = file;
      break;
    }
  }
  const instead = usable
    ? `give the program's full path, e.g. command: [${usable}, ...], or set PATH in the service's env: without ${dirname(first)}`
    : `install ${program} where other users can run it (e.g. /usr/local/bin) and give its full path`;
  return `the app runs in its pod as a uid of its own (${uid} and up, not root) and cannot run ${program}: PATH finds ${first} first, and ${closed}; ${instead}`;
}

/**
 * Why the sidecars cannot load mutual as their uid, or undefined: mutual cloned under a home
 * directory closed to others. (setpriv itself starts their Node whatever the path; reading
 * mutual's files is what fails, as "Cannot find module".)
 */
export async function podRuntimeAccessProblem(
  mutualBin: string,
  uid = PROXY_UID,
): Promise<string | undefined> {
  if (await canAs(uid, ['-r', mutualBin])) return undefined;
  const blocker = await firstClosedDirectory(dirname(mutualBin), uid);
  const closed =
    blocker === dirname(mutualBin)
      ? `${mutualBin}${await describeMode(mutualBin)}`
      : `${blocker}${await describeMode(blocker)}`;
  return `the sidecars run as uid ${uid} in their pods and cannot read mutual itself (${mutualBin}): ${closed} is closed to them; let other users in (\`${blocker === dirname(mutualBin) ? `chmod o+r ${mutualBin}` : `chmod o+x ${blocker}`}\`), or install mutual where they can go (e.g. under /opt)`;
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
