import { Command } from 'commander';
import { MutualError } from '../errors.ts';
import { VERSION } from '../version.ts';
import type { CliContext } from './context.ts';
import { addHelpExamples } from './examples.ts';

export { VERSION };

type RegisterCommand = (program: Command, context: CliContext) => unknown;

/**
 * Each top-level command and the modules that register it, in help order. Loaded on demand: a
 * sidecar (`mutual proxy run`) should not carry the dashboard, the installer and the identity
 * service in its heap, which every major GC walks and every idle pod keeps resident.
 */
const COMMANDS: Readonly<Record<string, readonly (() => Promise<RegisterCommand>)[]>> = {
  ca: [async () => (await import('./ca-command.ts')).registerCaCommand],
  cert: [async () => (await import('./cert-command.ts')).registerCertCommand],
  spiffe: [async () => (await import('./spiffe-command.ts')).registerSpiffeCommand],
  identity: [
    async () => (await import('./identity-command.ts')).registerIdentityCommand,
    async () => (await import('./mesh-identity-command.ts')).registerMeshIdentityCommand,
  ],
  destination: [async () => (await import('./destination-command.ts')).registerDestinationCommand],
  proxy: [async () => (await import('./proxy-command.ts')).registerProxyCommand],
  up: [async () => (await import('./up-command.ts')).registerUpCommand],
  down: [async () => (await import('./down-command.ts')).registerDownCommand],
  logs: [async () => (await import('./logs-command.ts')).registerLogsCommand],
  policy: [async () => (await import('./policy-command.ts')).registerPolicyCommand],
  dashboard: [async () => (await import('./dashboard-command.ts')).registerDashboardCommand],
  edges: [async () => (await import('./edges-command.ts')).registerEdgesCommand],
  check: [async () => (await import('./check-command.ts')).registerCheckCommand],
  inject: [async () => (await import('./inject-command.ts')).registerInjectCommand],
  install: [async () => (await import('./install-command.ts')).registerInstallCommand],
  version: [async () => (await import('./version-command.ts')).registerVersionCommand],
};

/**
 * The `mutual` command tree. Usage errors throw (exitOverride) so the caller reports them with a
 * code. Given `argv`, only the command it names is loaded; anything else (help, an unknown or
 * misspelled command, which commander answers with a suggestion) gets the whole tree.
 */
export async function createProgram(context: CliContext, argv: readonly string[] = []): Promise<Command> {
  const program = new Command('mutual')
    .description('Zero-trust mutual TLS for service-to-service traffic')
    .version(VERSION, '-V, --version')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => context.write(text),
      writeErr: (text) => context.writeError(text),
      // Usage errors are printed by the caller with their code; commander must not print them too.
      outputError: () => {},
    })
    .exitOverride();
  const named = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? COMMANDS[argv[0]] : undefined;
  const loaders = named ?? Object.values(COMMANDS).flat();
  const registers = await Promise.all(loaders.map((load) => load()));
  for (const register of registers) register(program, context);
  const applyToSubcommands = (command: Command) => {
    for (const sub of command.commands) {
      sub.exitOverride().configureOutput(program.configureOutput());
      applyToSubcommands(sub);
    }
  };
  applyToSubcommands(program);
  addHelpExamples(program);
  program.hook('preAction', (_program, action) => refuseEmptyPaths(action));
  return program;
}

/**
 * `--out ""` (often an unset shell variable: `--out "$DIR"`) would resolve to the current
 * directory and write keys there; a path option given an empty value is a usage error instead.
 */
function refuseEmptyPaths(command: Command): void {
  for (const option of command.options) {
    const kind = /<(dir|file)>/.exec(option.flags)?.[1];
    if (kind === undefined || command.getOptionValue(option.attributeName()) !== '') continue;
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${option.long} is empty: give a ${kind === 'dir' ? 'directory' : 'file'} (is a shell variable unset?)`,
    );
  }
}
