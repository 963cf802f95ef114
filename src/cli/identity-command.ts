import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDuration, parseListenAddress } from '../config/index.ts';
import { createJoinTokenIssuer, loadOrCreateJoinTokenKey, startIdentityService } from '../identity/index.ts';
import { DEFAULT_SVID_LIFETIME_MS, DEFAULT_SVID_SKEW_MS } from '../pki/index.ts';
import type { CliContext } from './context.ts';

const DEFAULT_STATE_DIR = '.mutual';

export function registerIdentityCommand(program: Command, context: CliContext): void {
  const identity = program
    .command('identity')
    .description('the identity service: signs workload certificates');
  identity
    .command('serve')
    .description('run the identity service (HTTPS API for certify and the trust bundle, plus an admin port)')
    .requiredOption(
      '--ca <dir>',
      'CA directory made by `mutual ca create` (uses issuer.crt, issuer.key, bundle.pem)',
    )
    .option('--state-dir <dir>', 'where the join-token key and the audit log live', DEFAULT_STATE_DIR)
    .option('--listen <address>', 'API address', '127.0.0.1:8443')
    .option('--admin-listen <address>', 'admin address (/live, /ready, /metrics)', '127.0.0.1:9990')
    .option(
      '--lifetime <duration>',
      'lifetime of workload certificates',
      `${DEFAULT_SVID_LIFETIME_MS / 3_600_000}h`,
    )
    .option(
      '--skew <duration>',
      'clock skew allowance on both ends of the validity',
      `${DEFAULT_SVID_SKEW_MS / 1000}s`,
    )
    .action(async (options: ServeOptions) => serve(options, context));
  const token = identity.command('token').description('local join tokens (for meshes without Kubernetes)');
  token
    .command('create')
    .description(
      'print a signed token that proves one identity (namespace + service account) to the identity service',
    )
    .requiredOption('--ns <namespace>', 'namespace of the workload')
    .requiredOption('--sa <service-account>', 'service account of the workload')
    .option('--ttl <duration>', 'how long the token is valid', '1h')
    .option(
      '--state-dir <dir>',
      'the identity service state directory holding the token key',
      DEFAULT_STATE_DIR,
    )
    .action(async (options: TokenOptions) => {
      const ttlMs = parseDuration(options.ttl, '--ttl');
      const key = await loadOrCreateJoinTokenKey(resolve(context.cwd, options.stateDir, 'identity'));
      const issuer = createJoinTokenIssuer({ signingKey: key.privateKey, clock: context.clock });
      context.write(`${await issuer.mint({ namespace: options.ns, serviceAccount: options.sa, ttlMs })}\n`);
    });
}

interface ServeOptions {
  ca: string;
  stateDir: string;
  listen: string;
  adminListen: string;
  lifetime: string;
  skew: string;
}

interface TokenOptions {
  ns: string;
  sa: string;
  ttl: string;
  stateDir: string;
}

async function serve(options: ServeOptions, context: CliContext): Promise<void> {
  const service = await startIdentityService({
    caDir: resolve(context.cwd, options.ca),
    stateDir: resolve(context.cwd, options.stateDir, 'identity'),
    listen: parseListenAddress(options.listen, '--listen'),
    adminListen: parseListenAddress(options.adminListen, '--admin-listen'),
    lifetimeMs: parseDuration(options.lifetime, '--lifetime'),
    skewMs: parseDuration(options.skew, '--skew'),
    clock: context.clock,
  });
  context.write(
    `identity service for ${service.trustDomain} listening on ${service.apiUrl} (admin ${service.adminUrl})\n`,
  );
  const signal = await context.untilShutdown();
  context.write(`${signal}: draining and stopping\n`);
  await service.close();
}
