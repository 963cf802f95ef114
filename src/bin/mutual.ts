// argv → config → start; nothing else.
import { runCli } from '../cli/index.ts';
import { systemClock } from '../clock.ts';
import { loadCliEnvironment } from '../config/index.ts';

export async function main(argv: readonly string[]): Promise<void> {
  const environment = loadCliEnvironment(process.env, Boolean(process.stdout.isTTY));
  process.exitCode = await runCli(
    argv,
    {
      clock: systemClock,
      cwd: process.cwd(),
      isColor: environment.isColor,
      write: (text) => process.stdout.write(text),
      writeError: (text) => process.stderr.write(text),
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
