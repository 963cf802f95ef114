import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseListenAddress } from '../config/index.ts';
import { createDashboard } from '../dashboard/index.ts';
import { MutualError } from '../errors.ts';
import { meshPaths, requireStateDirectory } from '../mesh/index.ts';
import type { CliContext } from './context.ts';
import { DEFAULT_MESH_STATE_DIR, stateFlagOf } from './up-command.ts';

export const DEFAULT_DASHBOARD_LISTEN = '127.0.0.1:9800';

interface DashboardOptions {
  stateDir: string;
  listen: string;
  allowRemote: boolean;
}

export function registerDashboardCommand(program: Command, context: CliContext): void {
  program
    .command('dashboard')
    .description('serve a read-only web dashboard of the running mesh: edges, topology, certificates, policy')
    .option('--state-dir <dir>', 'the state directory given to `mutual up`', DEFAULT_MESH_STATE_DIR)
    .option('--listen <address>', 'where to serve it (port 0 picks a free port)', DEFAULT_DASHBOARD_LISTEN)
    .option('--allow-remote', 'allow an address other than loopback (the dashboard has no login)', false)
    .action(async (options: DashboardOptions) => dashboard(options, context));
}

/**
 * URLs a browser can open for a server at `url`: a wildcard address (0.0.0.0, ::) is no place to
 * browse to, so loopback first, then this machine's other addresses (link-local ones left out).
 */
export function browsableUrls(
  url: string,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string[] {
  const parsed = new URL(url);
  const isIpv6 = parsed.hostname === '[::]';
  if (parsed.hostname !== '0.0.0.0' && !isIpv6) return [url];
  const at = (host: string) => `${parsed.protocol}//${host}:${parsed.port}${parsed.pathname}`;
  const others = Object.values(interfaces)
    .flat()
    .filter((entry) => entry !== undefined && !entry.internal && (isIpv6 || entry.family === 'IPv4'))
    // A link-local address (fe80::/10) needs a zone, which browsers do not take in a URL.
    .filter((entry) => !(entry!.family === 'IPv6' && /^fe[89ab]/i.test(entry!.address)))
    .map((entry) => at(entry!.family === 'IPv6' ? `[${entry!.address}]` : entry!.address));
  return [at(isIpv6 ? '[::1]' : '127.0.0.1'), ...others];
}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

async function dashboard(options: DashboardOptions, context: CliContext): Promise<void> {
  const listen = parseListenAddress(options.listen, '--listen');
  const isLoopback = isLoopbackHost(listen.host);
  if (!isLoopback && !options.allowRemote) {
    throw new MutualError(
      'MUTUAL_DASHBOARD_REMOTE_NOT_ALLOWED',
      `--listen ${options.listen} is reachable from other machines and the dashboard has no login: keep 127.0.0.1, or add --allow-remote if that is what you want`,
    );
  }
  const stateDir = resolve(context.cwd, options.stateDir);
  const paths = meshPaths(stateDir);
  // A mesh started later is picked up live, but never from a file.
  await requireStateDirectory(paths);
  const server = await createDashboard(
    {
      stateDir,
      host: listen.host,
      port: listen.port,
      isRemoteAllowed: !isLoopback,
      stateFlag: stateFlagOf(options.stateDir),
    },
    { clock: context.clock },
  );
  if (!isLoopback) {
    context.writeError(
      `! WARNING: the dashboard listens on ${listen.host.includes(':') ? `[${listen.host}]` : listen.host}: anyone who can reach this address sees the mesh's services, identities and traffic (read-only, no login).\n`,
    );
  }
  // Ctrl-C is handled from before the lines that invite it: written straight to the terminal, they
  // could be read and answered with a SIGINT before a handler set after them (a test did, under
  // load: the dashboard died of the signal, nothing closed).
  const shutdown = context.untilShutdown();
  const [url, ...others] = browsableUrls(server.url);
  context.write(
    `Mutual dashboard for ${stateDir}: ${url}${others.length > 0 ? ` (from other machines: ${others.join(', ')})` : ''}\n(Ctrl-C stops it)\n`,
  );
  // Started from the wrong directory (the default is ./.mutual), the page stayed empty with no word why.
  if (!existsSync(paths.runtimeFile)) {
    context.write(
      `No mesh is running from ${options.stateDir} yet: the page shows it once \`mutual up -f mesh.yaml${stateFlagOf(options.stateDir)}\` starts one (or pass the --state-dir a running mesh was started with).\n`,
    );
  }
  const signal = await shutdown;
  context.write(`${signal}: stopping the dashboard\n`);
  await server.close();
}
