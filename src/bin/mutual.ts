// argv → config → start; nothing else.
import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { runCli } from '../cli/index.ts';
import { systemClock } from '../clock.ts';
import { loadCliEnvironment } from '../config/index.ts';

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
function outputTo(stream: NodeJS.WriteStream, fd: number): (text: string) => void {
  let isFile = false;
  try {
    const stat = fstatSync(fd);
    isFile = stat.isFile() || (stat.isCharacterDevice() && !isatty(fd));
  } catch {
    // Not open: the stream says so on first write.
  }
  if (isFile) {
    return (text) => {
      try {
        writeSync(fd, text);
      } catch {
        // Lost: the next line may fit.
      }
    };
  }
  const isOpen = ignoreClosedOutput(stream);
  return (text) => {
    if (isOpen()) stream.write(text);
  };
}

export async function main(argv: readonly string[]): Promise<void> {
  const writeOut = outputTo(process.stdout, 1);
  const writeErr = outputTo(process.stderr, 2);
  const environment = loadCliEnvironment(process.env, Boolean(process.stdout.isTTY));
  process.exitCode = await runCli(
    argv,
    {
      clock: systemClock,
      cwd: process.cwd(),
      isColor: environment.isColor,
      write: writeOut,
      writeError: writeErr,
      setExitCode: (code) => {
        process.exitCode = code;
      },
      untilShutdown: () =>
        new Promise((resolve) => {
          for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve(signal));
        }),
    },
    environment.isDebug,
  );
}
