import type { Command } from 'commander';
import { meshIdentityOf, parseSpiffeId } from '../spiffe/index.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { renderFields, renderJson } from './render.ts';

export function registerSpiffeCommand(program: Command, context: CliContext): void {
  const spiffe = program.command('spiffe').description('work with SPIFFE IDs');
  spiffe
    .command('parse')
    .description('check a SPIFFE ID against the spec and show its parts; exit 1 naming the broken rule')
    .argument('<id>', 'e.g. spiffe://cluster.local/ns/default/sa/web')
    .addOption(outputOption())
    .action((input: string, options: { output: OutputFormat }) => {
      const id = parseSpiffeId(input);
      const mesh = meshIdentityOf(id);
      const view = {
        id: id.uri,
        trustDomain: id.trustDomain,
        path: id.path,
        ...(mesh ? { namespace: mesh.namespace, serviceAccount: mesh.serviceAccount } : {}),
      };
      if (options.output === 'json') {
        context.write(renderJson(view));
        return;
      }
      context.write(
        renderFields(
          [
            ['trust domain', view.trustDomain],
            ['path', view.path === '' ? '(none: the trust domain itself)' : view.path],
            ...(mesh
              ? ([
                  ['namespace', mesh.namespace],
                  ['service account', mesh.serviceAccount],
                ] as const)
              : ([['mesh form', 'no (not /ns/<namespace>/sa/<service-account>)']] as const)),
          ],
          '',
        ),
      );
    });
}
