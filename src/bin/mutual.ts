// argv → config → start; nothing else.
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

export async function main(argv: readonly string[]): Promise<void> {
  const isStdoutOpen = ignoreClosedOutput(process.stdout);
  const isStderrOpen = ignoreClosedOutput(process.stderr);
  const environment = loadCliEnvironment(process.env, Boolean(process.stdout.isTTY));
  process.exitCode = await runCli(
    argv,
    {
      clock: systemClock,
      cwd: process.cwd(),
      isColor: environment.isColor,
      write: (text) => {
        if (isStdoutOpen()) process.stdout.write(text);
      },
      writeError: (text) => {
        if (isStderrOpen()) process.stderr.write(text);
      },
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
