import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { registerProxyInitCommand } from './proxy-init-command.ts';
import { registerProxyRunCommand } from './proxy-run-command.ts';

/** `mutual proxy …`: the sidecar proxy and the rules that route a workload's traffic through it. */
export function registerProxyCommand(program: Command, context: CliContext): Command {
  const proxy = program.command('proxy').description('the sidecar proxy: transparent mTLS for one workload');
  registerProxyRunCommand(proxy, context);
  registerProxyInitCommand(proxy, context);
  return proxy;
}
