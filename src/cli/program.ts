import { Command } from 'commander';
import { VERSION } from '../version.ts';
import { registerCaCommand } from './ca-command.ts';
import { registerCertCommand } from './cert-command.ts';
import { registerCheckCommand } from './check-command.ts';
import type { CliContext } from './context.ts';
import { registerDashboardCommand } from './dashboard-command.ts';
import { registerDestinationCommand } from './destination-command.ts';
import { registerDownCommand } from './down-command.ts';
import { registerEdgesCommand } from './edges-command.ts';
import { registerIdentityCommand } from './identity-command.ts';
import { registerInjectCommand } from './inject-command.ts';
import { registerInstallCommand } from './install-command.ts';
import { registerLogsCommand } from './logs-command.ts';
import { registerMeshIdentityCommand } from './mesh-identity-command.ts';
import { registerPolicyCommand } from './policy-command.ts';
import { registerProxyCommand } from './proxy-command.ts';
import { registerSpiffeCommand } from './spiffe-command.ts';
import { registerUpCommand } from './up-command.ts';

export { VERSION };

/** The `mutual` command tree. Usage errors throw (exitOverride) so the caller reports them with a code. */
export function createProgram(context: CliContext): Command {
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
  registerCaCommand(program, context);
  registerCertCommand(program, context);
  registerSpiffeCommand(program, context);
  registerIdentityCommand(program, context);
  registerDestinationCommand(program, context);
  registerProxyCommand(program, context);
  registerUpCommand(program, context);
  registerDownCommand(program, context);
  registerLogsCommand(program, context);
  registerPolicyCommand(program, context);
  registerDashboardCommand(program, context);
  registerMeshIdentityCommand(program, context);
  registerEdgesCommand(program, context);
  registerCheckCommand(program, context);
  registerInjectCommand(program, context);
  registerInstallCommand(program, context);
  const applyToSubcommands = (command: Command) => {
    for (const sub of command.commands) {
      sub.exitOverride().configureOutput(program.configureOutput());
      applyToSubcommands(sub);
    }
  };
  applyToSubcommands(program);
  return program;
}
