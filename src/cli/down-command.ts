import { resolve } from 'node:path';
import type { Command } from 'commander';
import { downMesh, meshPaths } from '../mesh/index.ts';
import type { CliContext } from './context.ts';
import { DEFAULT_MESH_STATE_DIR } from './up-command.ts';

export function registerDownCommand(program: Command, context: CliContext): void {
  program
    .command('down')
    .description('stop the mesh `mutual up` started (also cleans up after a crashed `mutual up`)')
    .option('--state-dir <dir>', 'the state directory given to `mutual up`', DEFAULT_MESH_STATE_DIR)
    .action(async (options: { stateDir: string }) => {
      const paths = meshPaths(resolve(context.cwd, options.stateDir));
      const result = await downMesh(paths);
      if (result.unreadableRuntime) {
        const why = result.unreadableRuntime.replace(/; `mutual down[^`]*` removes it$/, '');
        context.write(
          result.supervisorPid === undefined
            ? `${why}.\nRemoved it. No \`mutual up\` holds ${options.stateDir}/up.lock, and the file names no process that can be trusted, so none was stopped: a process a killed \`mutual up\` left behind must be stopped by hand (\`ps -ef | grep ${options.stateDir}\`). \`mutual up\` now starts afresh.\n`
            : `${why}.\nRemoved it, and stopped the \`mutual up\` holding ${options.stateDir}/up.lock (pid ${result.supervisorPid}), which stopped every process it started. \`mutual up\` now starts afresh.\n`,
        );
        return;
      }
      if (!result.wasRunning) {
        context.write(`No mesh is running from ${options.stateDir}; nothing to stop.\n`);
        return;
      }
      context.write(
        result.supervisorPid === undefined
          ? 'A netns mesh had died before it started any process.\n'
          : result.leftovers === 0
            ? `Stopped the mesh (mutual up, pid ${result.supervisorPid}, stopped every process).\n`
            : `Stopped the mesh; ${result.leftovers} processes were left behind by a stopped \`mutual up\` and are now stopped too.\n`,
      );
      if (result.network) {
        const { namespaces, links, directories } = result.network;
        context.write(
          `Removed the network it left: ${count(namespaces, 'network namespace')}, ${count(links, 'host link')}, ${count(directories, 'directory', 'directories')}.\n`,
        );
      }
    });
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
