import { CommanderError } from 'commander';
import { errorCatalog, isMutualError } from '../errors.ts';
import type { CliContext } from './context.ts';
import { createProgram } from './program.ts';

/**
 * Runs one `mutual` invocation and returns its exit code: 0 ok, 1 a failed check or error, 2 a
 * usage error. Every failure is printed as `error[CODE]: message` with what to do; a stack trace
 * only with MUTUAL_DEBUG=1.
 */
export async function runCli(argv: readonly string[], context: CliContext, isDebug = false): Promise<number> {
  let exitCode = 0;
  const program = await createProgram({ ...context, setExitCode: (code) => (exitCode = code) }, argv);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      ) {
        return 0;
      }
      // A command group run without its subcommand: Commander printed the group's help and says
      // only "(outputHelp)".
      const message =
        error.code === 'commander.help'
          ? 'this command needs a subcommand: one of those listed above'
          : error.message.replace(/^error: /, '');
      context.writeError(
        `error[MUTUAL_CLI_USAGE]: ${message}\n  hint: ${errorCatalog.MUTUAL_CLI_USAGE.action}\n`,
      );
      return 2;
    }
    if (isMutualError(error)) {
      const hint = errorCatalog[error.code].action;
      context.writeError(`error[${error.code}]: ${error.message}\n  hint: ${hint}\n`);
      if (isDebug && error.stack) context.writeError(`${error.stack}\n`);
      return error.code === 'MUTUAL_CLI_USAGE' ? 2 : 1;
    }
    context.writeError(
      `error[MUTUAL_INTERNAL]: ${(error as Error)?.message ?? String(error)}\n  hint: ${errorCatalog.MUTUAL_INTERNAL.action}\n`,
    );
    if (isDebug) context.writeError(`${(error as Error)?.stack ?? ''}\n`);
    return 1;
  }
}
