// argv → config → start; nothing else.
import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { runCli } from '../cli/index.ts';
import { systemClock } from '../clock.ts';
import { loadCliEnvironment } from '../config/index.ts';
import { errorCatalog } from '../errors.ts';

/**
 * A reader that goes away (`mutual up | head`, a closed terminal, a parent that stopped reading)
 * must not crash the command with EPIPE: `mutual up` would die and leave its mesh running. Output
 * stops; the work goes on.
 */
function ignoreClosedOutput(stream: NodeJS.WriteStream): () => boolean {
  let isOpen = true;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
    isOpen = false;
  });
  return () => isOpen;
}

/**
 * How text reaches fd 1 or 2. A file (a daemon's log, as `mutual up` starts them) is written
 * directly, and a write the disk refuses (full, quota, I/O error) loses that line only: through
 * the stream the first ENOSPC was thrown and killed the daemon (every sidecar of a mesh on a full
 * disk), and a stream that failed once stays destroyed, so no line would follow once space is
 * freed. Pipes and terminals keep the stream (see ignoreClosedOutput).
 */
function outputTo(stream: NodeJS.WriteStream, fd: number): Output {
  let isFile = false;
  try {
    const stat = fstatSync(fd);
    isFile = stat.isFile() || (stat.isCharacterDevice() && !isatty(fd));
  } catch {
    // Not open: the stream says so on first write.
  }
  if (isFile) {
    let failure: Error | undefined;
    return {
      write(text) {
        try {
          writeSync(fd, text);
        } catch (error) {
          // Lost: the next line may fit.
          failure ??= error as Error;
        }
      },
      failure: () => failure,
    };
  }
  const isOpen = ignoreClosedOutput(stream);
  return {
    write(text) {
      if (isOpen()) stream.write(text);
    },
    failure: () => undefined,
  };
}

interface Output {
  write(text: string): void;
  /** The first write the file refused (full disk, quota, I/O error), if any. */
  failure(): Error | undefined;
}

export async function main(argv: readonly string[]): Promise<void> {
  const out = outputTo(process.stdout, 1);
  const err = outputTo(process.stderr, 2);
  const environment = loadCliEnvironment(process.env, Boolean(process.stdout.isTTY));
  let isDaemon = false;
  process.exitCode = await runCli(
    argv,
    {
      clock: systemClock,
      cwd: process.cwd(),
      isColor: environment.isColor,
      write: (text) => out.write(text),
      writeError: (text) => err.write(text),
      setExitCode: (code) => {
        process.exitCode = code;
      },
      untilShutdown: (options = {}) => {
        isDaemon = true;
        const signals = ['SIGINT', 'SIGTERM', ...(options.isHangupToo ? (['SIGHUP'] as const) : [])] as const;
        return new Promise((resolve) => {
          for (const signal of signals) process.once(signal, () => resolve(signal));
        });
      },
    },
    environment.isDebug,
  );
  // A command whose output is its result (install, inject, -o json) into a file the disk filled
  // up: what was written is cut short, so it must not look like a success. A daemon's stdout is
  // its log, whose lost lines are no reason to fail (see outputTo).
  const failure = out.failure();
  if (failure && !isDaemon) {
    err.write(
      `error[MUTUAL_IO_WRITE_FAILED]: the output could not all be written to standard output (${failure.message}), so what was written is incomplete: free space or write it elsewhere, then run the command again\n  hint: ${errorCatalog.MUTUAL_IO_WRITE_FAILED.action}\n`,
    );
    if (process.exitCode === 0) process.exitCode = 1;
  }
}
