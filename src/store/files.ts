import { constants, createReadStream, existsSync, mkdirSync, type Stats, statSync } from 'node:fs';
import { access, link, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MutualError } from '../errors.ts';

/** Secrets are readable by their owner only; certificates and bundles by anyone. */
export const SECRET_FILE_MODE = 0o600;
export const PUBLIC_FILE_MODE = 0o644;

export interface OutputFile {
  readonly name: string;
  readonly contents: string;
  readonly isSecret: boolean;
}

/**
 * Writes a set of files into `dir`, never replacing one: if any already exists, nothing is
 * written and the error lists them all, so a second `ca create` cannot destroy a CA's keys.
 * `flag` is the option that named `dir`, for the error messages.
 */
export async function writeNewFiles(
  dir: string,
  files: readonly OutputFile[],
  flag = '--out',
): Promise<string[]> {
  const paths = files.map((file) => join(dir, file.name));
  const existing: string[] = [];
  for (const path of paths) {
    if (await exists(path)) existing.push(path);
  }
  if (existing.length > 0) {
    throw new MutualError(
      'MUTUAL_IO_ALREADY_EXISTS',
      `refusing to overwrite ${existing.join(', ')}; choose another ${flag} directory or move these files away first`,
    );
  }
  try {
    await makeDirectory(dir, 0o700);
  } catch (error) {
    const blocker = await fileInTheWay(dir);
    if (blocker === undefined) throw writeFailed(dir, error);
    const where = blocker === dir ? 'is a file' : `runs through ${blocker}, which is a file`;
    throw new MutualError(
      'MUTUAL_IO_WRITE_FAILED',
      `${flag} ${dir} ${where}, not a directory: it names the directory for ${files.map((file) => file.name).join(', ')}: give a new path (it is created) or an existing directory, or move the file away`,
      { cause: error },
    );
  }
  // Each file is written whole under a temporary name first, then all are linked into place
  // (link, unlike rename, fails rather than replace a file created meanwhile). A write that fails
  // (disk full, a file size limit) leaves none of them: no CA without its issuer, no key cut short
  // that the next run refuses to overwrite.
  const temporaries = paths.map((path) => join(dir, `.${basename(path)}.${process.pid}.tmp`));
  const linked: string[] = [];
  try {
    for (const [index, file] of files.entries()) {
      await writeFile(temporaries[index]!, file.contents, {
        flag: 'wx',
        mode: file.isSecret ? SECRET_FILE_MODE : PUBLIC_FILE_MODE,
      }).catch((error: unknown) => {
        throw writeFailed(paths[index]!, error);
      });
    }
    for (const [index, path] of paths.entries()) {
      await link(temporaries[index]!, path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw writeFailed(path, error);
        throw new MutualError(
          'MUTUAL_IO_ALREADY_EXISTS',
          `refusing to overwrite ${path}, created meanwhile; choose another ${flag} directory or move it away first`,
        );
      });
      linked.push(path);
    }
  } catch (error) {
    await Promise.all(linked.map((path) => rm(path, { force: true })));
    throw error;
  } finally {
    await Promise.all(temporaries.map((path) => rm(path, { force: true })));
  }
  return paths;
}

/**
 * `mkdir -p`, one level at a time from the deepest directory that exists. Node's recursive mkdir
 * loops forever where a level answers ENOENT although its parent exists (under /proc or /sys);
 * here that ENOENT is the error.
 */
export async function makeDirectory(dir: string, mode: number): Promise<void> {
  for (const level of missingLevels(dir)) {
    await mkdir(level, { mode }).catch(unlessMadeMeanwhile);
  }
  if (!(await stat(dir)).isDirectory()) throw notADirectory(dir);
}

/** makeDirectory, synchronously. */
export function makeDirectorySync(dir: string, mode: number): void {
  for (const level of missingLevels(dir)) {
    try {
      mkdirSync(level, { mode });
    } catch (error) {
      unlessMadeMeanwhile(error as NodeJS.ErrnoException);
    }
  }
  if (!statSync(dir).isDirectory()) throw notADirectory(dir);
}

/** The directories `mkdir -p dir` would make, outermost first. */
function missingLevels(dir: string): string[] {
  const missing: string[] = [];
  for (let level = resolve(dir); !existsSync(level); level = dirname(level)) {
    missing.unshift(level);
    if (dirname(level) === level) break;
  }
  return missing;
}

/** Made meanwhile by someone else, as `mkdir -p` allows. */
function unlessMadeMeanwhile(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EEXIST') throw error;
}

function notADirectory(dir: string): Error {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR' });
}

export async function readTextFile(path: string, what: string): Promise<string> {
  return (await readFileBytes(path, what)).toString('utf8');
}

/**
 * Reads a file, or a stream such as stdin, to its end but no further than `maxBytes`: a pipe, a
 * FIFO (`<(kubectl get …)`) or a device (/dev/zero) has no size to check first, so the bytes are
 * counted as they come. `label` names the source in errors (a path, `<stdin>`); `advice` follows
 * the "too large" one.
 */
export async function readBoundedText(
  source: string | AsyncIterable<Buffer | string>,
  options: { what: string; label: string; maxBytes: number; advice: string },
): Promise<string> {
  const { what, label, maxBytes, advice } = options;
  const tooLarge = (size: string) =>
    new MutualError(
      'MUTUAL_IO_READ_FAILED',
      `${what} ${label} is ${size}; at most ${maxBytes / (1024 * 1024)} MiB are read: ${advice}`,
    );
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    if (typeof source === 'string') {
      const { size } = await stat(source);
      if (size > maxBytes) throw tooLarge(`${size} bytes`);
    }
    const stream = typeof source === 'string' ? createReadStream(source) : source;
    for await (const chunk of stream) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      total += bytes.length;
      if (total > maxBytes) {
        if ('destroy' in stream && typeof stream.destroy === 'function') stream.destroy();
        throw tooLarge(`more than ${maxBytes} bytes`);
      }
      chunks.push(bytes);
    }
  } catch (error) {
    throw readFailed(what, label, error);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Certificates, keys and bundles are small; a bigger file is a mistake or an attack. */
export const MAX_INPUT_FILE_BYTES = 4 * 1024 * 1024;

/** Reads a file whole; `what` names it in the error ("trust bundle", "issuer key" ...). */
export async function readFileBytes(path: string, what: string): Promise<Buffer> {
  try {
    const { size } = await stat(path);
    if (size > MAX_INPUT_FILE_BYTES) {
      throw new MutualError(
        'MUTUAL_IO_READ_FAILED',
        `${what} ${path} is ${size} bytes; at most ${MAX_INPUT_FILE_BYTES} are read. Is it the right file?`,
      );
    }
    return await readFile(path);
  } catch (error) {
    throw readFailed(what, path, error);
  }
}

/** What a path opened for reading turned out to be, when not a regular file. */
export function fileKind(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'a device';
}

export type RegularFileRead =
  | { readonly bytes: Buffer; readonly notAFile?: undefined; readonly tooLarge?: undefined }
  | { readonly bytes?: undefined; readonly notAFile: { readonly kind: string; readonly stats: Stats } }
  | {
      readonly bytes?: undefined;
      readonly notAFile?: undefined;
      /** Its size by the stat, or `maxBytes` with `grew` when it grew past it while read. */
      readonly tooLarge: { readonly size: number; readonly grew: boolean };
    };

/**
 * Reads a regular file of at most `maxBytes`, for inputs a process re-reads while it runs
 * (credentials, a CA's files). Opened non-blocking, so a FIFO without a writer (or one swapped in
 * after a stat) is reported instead of hanging every later read; counted as read, so a file that
 * grows after its stat stops at the bound. Open errors are thrown as node gives them.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<RegularFileRead> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return { notAFile: { kind: fileKind(stats), stats } };
    if (stats.size > maxBytes) return { tooLarge: { size: stats.size, grew: false } };
    // Sized by the stat (one read, one byte to spare for a file that grew), never past maxBytes + 1.
    const chunks: Buffer[] = [];
    let length = 0;
    while (length <= maxBytes) {
      const room = Math.min(Math.max(stats.size + 1 - length, 16_384), maxBytes + 1 - length);
      const chunk = Buffer.allocUnsafe(room);
      const { bytesRead } = await handle.read(chunk, 0, room, length);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
    }
    if (length > maxBytes) return { tooLarge: { size: maxBytes, grew: true } };
    return { bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length) };
  } finally {
    await handle.close();
  }
}

/** A read error as MUTUAL_IO_READ_FAILED naming the file (a MutualError already says it all). */
function readFailed(what: string, label: string, error: unknown): MutualError {
  if (error instanceof MutualError) return error;
  return new MutualError(
    'MUTUAL_IO_READ_FAILED',
    `cannot read ${what} ${label}: ${readFailure(label, error)}`,
    {
      cause: error,
    },
  );
}

/**
 * Why a read failed, in words: a directory given for a file (`cert inspect ca/`) or a file given
 * for a directory (`--ca ca/bundle.pem`) printed node's "EISDIR: illegal operation on a directory".
 */
export function readFailure(path: string, error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'it does not exist';
    case 'EISDIR':
      return 'it is a directory, not a file: give the path of a file in it';
    case 'ENOTDIR': {
      let level = dirname(resolve(path));
      while (dirname(level) !== level && !isExistingFile(level)) level = dirname(level);
      return `${isExistingFile(level) ? level : 'a part of the path'} is a file, not a directory`;
    }
    case 'EACCES':
      return 'permission denied: run as a user who may read it, or change its mode';
    default:
      return (error as Error).message;
  }
}

function isExistingFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The path itself or its nearest existing ancestor, when that is not a directory. */
async function fileInTheWay(dir: string): Promise<string | undefined> {
  for (let path = resolve(dir); ; path = dirname(path)) {
    try {
      const isDirectory = (await stat(path)).isDirectory();
      return isDirectory ? undefined : path === resolve(dir) ? dir : path;
    } catch {
      if (dirname(path) === path) return undefined;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

function writeFailed(path: string, error: unknown): MutualError {
  return new MutualError('MUTUAL_IO_WRITE_FAILED', `cannot write ${path}: ${(error as Error).message}`, {
    cause: error,
  });
}
