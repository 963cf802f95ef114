import { open, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { MutualError } from '../errors.ts';
import { meshPaths, requireStateDirectory } from '../mesh/index.ts';
import type { CliContext } from './context.ts';
import { DEFAULT_MESH_STATE_DIR, stateFlagOf } from './up-command.ts';

interface LogsOptions {
  proxy: boolean;
  follow: boolean;
  stateDir: string;
}

export function registerLogsCommand(program: Command, context: CliContext): void {
  program
    .command('logs')
    .description(
      "print a mesh service's log (its app, or with --proxy its sidecar); `identity` and `destination` are the control plane's services",
    )
    .argument('[service]', 'service name from mesh.yaml, or identity, or destination')
    .option('--proxy', "the sidecar's log instead of the app's", false)
    .option('-f, --follow', 'keep printing new lines until Ctrl-C', false)
    .option('--state-dir <dir>', 'the state directory given to `mutual up`', DEFAULT_MESH_STATE_DIR)
    .action(async (service: string | undefined, options: LogsOptions) => logs(service, options, context));
}

/** The services with a log in `logsDir` (app and sidecar logs share a name). */
async function servicesWithLogs(logsDir: string): Promise<string[]> {
  const known = await readdir(logsDir).catch((error: NodeJS.ErrnoException) => {
    // None yet (no mesh started here) is said by the caller; one it may not read is said here.
    if (error.code === 'ENOENT') return [] as string[];
    throw new MutualError('MUTUAL_IO_READ_FAILED', `cannot read the logs in ${logsDir}: ${error.message}`, {
      cause: error,
    });
  });
  return [...new Set(known.filter((name) => name.endsWith('.log')).map((name) => name.split('.')[0]!))];
}

async function logs(service: string | undefined, options: LogsOptions, context: CliContext): Promise<void> {
  const paths = meshPaths(resolve(context.cwd, options.stateDir));
  await requireStateDirectory(paths);
  const { logsDir } = paths;
  if (service === undefined) {
    const services = await servicesWithLogs(logsDir);
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      services.length === 0
        ? `give a service, e.g. \`mutual logs web --proxy\`; there are no logs in ${logsDir} yet: start a mesh with \`mutual up -f mesh.yaml\` (or pass its --state-dir)`
        : `give a service: there are logs for ${services.join(', ')} (e.g. \`mutual logs ${services.find((name) => name !== 'identity' && name !== 'destination') ?? services[0]} --proxy${stateFlagOf(options.stateDir)}\`)`,
    );
  }
  const candidates = [`${service}${options.proxy ? '.proxy' : ''}.log`];
  if (service === 'identity' && !options.proxy) candidates.push('identity.log');
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  for (const name of candidates) {
    handle = await open(join(logsDir, name), 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw new MutualError('MUTUAL_IO_READ_FAILED', `cannot read ${join(logsDir, name)}: ${error.message}`, {
        cause: error,
      });
    });
    if (handle) break;
  }
  if (!handle) {
    const services = await servicesWithLogs(logsDir);
    // No mesh ever ran here: SERVICE_UNKNOWN's hint ("use one of the service names the message
    // lists") listed none; NOT_RUNNING's says how to start one or which --state-dir to pass.
    if (services.length === 0)
      throw new MutualError(
        'MUTUAL_MESH_NOT_RUNNING',
        `no mesh has run from ${paths.stateDir}: no logs in ${logsDir}`,
      );
    throw new MutualError(
      'MUTUAL_MESH_SERVICE_UNKNOWN',
      `no log for "${service}"${options.proxy ? ' --proxy' : ''} in ${logsDir}; there are logs for ${services.join(', ')}`,
    );
  }
  try {
    let position = 0;
    const copy = async () => {
      const { size } = await handle.stat();
      if (size < position) position = 0; // truncated: start over
      while (position < size) {
        const buffer = Buffer.alloc(Math.min(64 * 1024, size - position));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        context.write(buffer.subarray(0, bytesRead).toString('utf8'));
      }
    };
    await copy();
    if (!options.follow) return;
    let isDone = false;
    void context.untilShutdown().then(() => {
      isDone = true;
    });
    while (!isDone) {
      await new Promise((r) => setTimeout(r, 250));
      await copy();
    }
  } finally {
    await handle.close();
  }
}
