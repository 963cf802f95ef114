import type { Command } from 'commander';
import { VERSION } from '../version.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { renderJson } from './render.ts';

/**
 * `mutual version`, as `linkerd version`, `istioctl version` and `step version` answer: a user
 * coming from them got "unknown command 'version'". With the runtime, which decides the TLS stack.
 */
export function registerVersionCommand(program: Command, context: CliContext): void {
  program
    .command('version')
    .description('print the version of mutual, and of the Node.js and OpenSSL it runs on')
    .addOption(outputOption())
    .action((options: { output: OutputFormat }) => {
      const versions = { mutual: VERSION, node: process.versions.node, openssl: process.versions.openssl };
      context.write(
        options.output === 'json'
          ? renderJson(versions)
          : `mutual ${versions.mutual} (Node.js ${versions.node}, OpenSSL ${versions.openssl})\n`,
      );
    });
}
