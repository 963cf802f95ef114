// One `mutual up` per state directory: up.lock, claimed before anything starts and held until the
// mesh stops. runtime.json appears only once the identity service is ready, so on its own it let
// two `up`s started together both go ahead, each with its own processes in one state directory.
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MutualError } from '../errors.ts';
import { isRunning, processStartTicks } from './processes.ts';

export interface UpLock {
  readonly file: string;
  /** Removes the lock if it is still this process's. */
  release(): Promise<void>;
}

interface LockHolder {
  readonly pid: number;
  readonly startTicks: number;
}

/**
 * Claims `<stateDir>/up.lock` for this process. The lock is written whole to a temporary file and
 * linked into place (link fails where the name exists), so a reader never sees it half-written.
 * A lock whose process is gone (up killed with -9) is taken over; a live one is refused.
 */
export async function claimUpLock(stateDir: string): Promise<UpLock> {
  const file = join(stateDir, 'up.lock');
  const self: LockHolder = { pid: process.pid, startTicks: processStartTicks(process.pid) ?? 0 };
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(self)}\n`, { mode: 0o600 });
    for (let attempt = 1; !(await linked(temporary, file)); attempt++) {
      const holder = await readHolder(file);
      if ((holder && holder.pid !== process.pid && isRunning(holder)) || attempt >= 3) {
        throw new MutualError(
          'MUTUAL_MESH_ALREADY_RUNNING',
          `another \`mutual up\`${holder ? ` (pid ${holder.pid})` : ''} is starting or running a mesh from ${stateDir}; stop it with \`mutual down --state-dir ${stateDir}\` first, or give this one another --state-dir`,
        );
      }
      // Left by an up that is gone (killed with -9): take it over.
      await rm(file, { force: true });
    }
  } catch (error) {
    if (error instanceof MutualError) throw error;
    throw new MutualError(
      'MUTUAL_IO_WRITE_FAILED',
      `cannot write ${file} (${(error as Error).message}); give --state-dir a directory you can write to`,
      { cause: error },
    );
  } finally {
    await rm(temporary, { force: true });
  }
  return {
    file,
    async release() {
      const holder = await readHolder(file);
      if (holder?.pid === self.pid && holder.startTicks === self.startTicks) await rm(file, { force: true });
    },
  };
}

/** True once `temporary` is linked as `file`; false where `file` exists. */
async function linked(temporary: string, file: string): Promise<boolean> {
  try {
    await link(temporary, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** The process holding `file`, or undefined when it is gone or unreadable (then stale). */
export async function readUpLock(stateDir: string): Promise<LockHolder | undefined> {
  const holder = await readHolder(join(stateDir, 'up.lock'));
  return holder && isRunning(holder) ? holder : undefined;
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as Partial<LockHolder>;
    if (typeof value.pid !== 'number' || typeof value.startTicks !== 'number') return undefined;
    return { pid: value.pid, startTicks: value.startTicks };
  } catch {
    return undefined;
  }
}
