// The `mutual` command line: one file per command, each turning flags into calls on the
// capabilities below it. Commands print; they never call process.exit.

export type { CliContext, OutputFormat } from './context.ts';
export { createProgram, VERSION } from './program.ts';
export { runCli } from './run.ts';
