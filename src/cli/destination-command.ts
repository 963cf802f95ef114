import { resolve } from 'node:path';
import type { Command } from 'commander';
import { credentialsFrom, type ProxyCredentialsConfig, parseListenAddress } from '../config/index.ts';
import { destinationServiceId, startDestinationService } from '../destination/index.ts';
import { MutualError } from '../errors.ts';
import { inClusterConnection, type KubeConnection, kubeconfigConnection } from '../k8s/kube-client/index.ts';
import { createProxyLog } from '../proxy/index.ts';
import { parseTrustDomain } from '../spiffe/index.ts';
import type { CliContext } from './context.ts';
import {
  MAX_CONNECTIONS_PER_ADDRESS_OPTION,
  maxConnectionsFlag,
  maxConnectionsOption,
  maxConnectionsPerAddressFlag,
} from './identity-command.ts';

interface ServeOptions {
  listen: string;
  adminListen: string;
  file?: string;
  policyDir?: string;
  kubernetes?: string;
  kubeconfig?: string;
  kubeContext?: string;
  clusterDomain: string;
  trustDomain: string;
  identityUrl?: string;
  tokenFile?: string;
  spiffeId?: string;
  identityBundle?: string;
  identityServerId?: string;
  cert?: string;
  key?: string;
  bundle?: string;
  maxConnections: string;
  maxConnectionsPerAddress: string;
}

/** `mutual destination serve`: the control plane's answer to "is this address meshed, and as whom?". */
export function registerDestinationCommand(program: Command, context: CliContext): void {
  const destination = program
    .command('destination')
    .description('the destination service: tells proxies which addresses are meshed and their identities');
  destination
    .command('serve')
    .description(
      'serve the destination and policy API over mTLS (docs/destination.md), fed by a table file and/or Kubernetes',
    )
    .option('--listen <address>', 'API address (HTTPS, mTLS)', '127.0.0.1:8086')
    .option('--admin-listen <address>', 'admin address (/live, /ready, /metrics)', '127.0.0.1:9996')
    .option('--file <table>', 'destination table (YAML or JSON: address → SPIFFE ID), watched')
    .option(
      '--kubernetes <in-cluster>',
      'watch Pods, Services, EndpointSlices and policies from inside the cluster',
    )
    .option(
      '--kubeconfig <file>',
      'watch Pods, Services, EndpointSlices and policies through this kubeconfig',
    )
    .option(
      '--policy-dir <dir>',
      'without Kubernetes: serve the PeerAuthentication / AuthorizationPolicy files of this directory (watched) at /v1/policies',
    )
    .option('--kube-context <name>', 'the kubeconfig context to use (default: its current-context)')
    .option(
      '--cluster-domain <domain>',
      'DNS domain of <service>.<namespace>.svc.<domain> names',
      'cluster.local',
    )
    .option('--trust-domain <domain>', 'trust domain of the default --spiffe-id', 'cluster.local')
    .option(
      '--identity-url <url>',
      'identity service to get our certificate from, e.g. https://mutual-identity.mutual-system.svc:8443',
    )
    .option(
      '--token-file <file>',
      'join token or projected ServiceAccount token (read again on every renewal)',
    )
    .option(
      '--spiffe-id <id>',
      'our SPIFFE ID (default spiffe://<trust-domain>/ns/mutual-system/sa/destination)',
    )
    .option('--identity-bundle <file>', 'roots that vouch for the identity service (bundle.pem)')
    .option('--identity-server-id <id>', 'SPIFFE ID of the identity service')
    .option('--cert <file>', 'static certificate chain, leaf first (instead of the identity service)')
    .option('--key <file>', 'private key of --cert')
    .option('--bundle <file>', 'trust roots: clients must present an SVID under them')
    .option(...MAX_CONNECTIONS_PER_ADDRESS_OPTION)
    .option(...maxConnectionsOption('held long poll'))
    .action(async (options: ServeOptions) => {
      const log = createProxyLog(
        (line) => context.writeError(line),
        () => context.clock.now(),
      );
      // Checked before anything starts, as the flags were written.
      const limits = {
        ...maxConnectionsFlag(options.maxConnections),
        maxConnectionsPerAddress: maxConnectionsPerAddressFlag(options.maxConnectionsPerAddress),
      };
      const service = await startDestinationService({
        ...limits,
        listen: parseListenAddress(options.listen, '--listen'),
        adminListen: parseListenAddress(options.adminListen, '--admin-listen'),
        credentials: credentials(options, context.cwd),
        ...(options.file ? { tableFile: resolve(context.cwd, options.file) } : {}),
        ...(options.policyDir ? { policyDir: resolve(context.cwd, options.policyDir) } : {}),
        ...(await kubernetes(options, context.cwd).then((connection) =>
          connection ? { kubernetes: connection } : {},
        )),
        clusterDomain: options.clusterDomain,
        clock: context.clock,
        log,
      });
      // Signals are handled from before the line saying it listens (see dashboard-command.ts).
      const shutdown = context.untilShutdown();
      context.write(
        `destination service ${service.spiffeId} listening on ${service.apiUrl} (admin ${service.adminUrl})\n`,
      );
      const signal = await shutdown;
      log.info('stopping', { signal });
      await service.close();
    });
}

function credentials(options: ServeOptions, cwd: string): ProxyCredentialsConfig {
  const isIdentity = options.identityUrl !== undefined || options.tokenFile !== undefined;
  const at = (file: string | undefined) => (file === undefined ? undefined : resolve(cwd, file));
  // The proxy's wording named MUTUAL_PROXY_IDENTITY_BUNDLE_PEM, which this command does not read,
  // and --spiffe-id, which has a default here.
  const given = [options.identityUrl, options.tokenFile, options.identityBundle, options.cert, options.key];
  if (given.every((flag) => flag === undefined) && options.bundle === undefined) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'no credentials: give --identity-url, --token-file and --identity-bundle (a certificate from `mutual identity serve`), or --cert, --key and --bundle (static files, e.g. from `mutual cert issue`)',
    );
  }
  try {
    return credentialsFrom({
      identityUrl: options.identityUrl,
      tokenFile: at(options.tokenFile),
      identityBundle: at(options.identityBundle),
      identityServerId: options.identityServerId,
      spiffeId:
        options.spiffeId ??
        (isIdentity ? destinationServiceId(parseTrustDomain(options.trustDomain)) : undefined),
      cert: at(options.cert),
      key: at(options.key),
      bundle: at(options.bundle),
    });
  } catch (error) {
    if (error instanceof MutualError) throw error;
    throw new MutualError('MUTUAL_CLI_USAGE', (error as Error).message);
  }
}

async function kubernetes(options: ServeOptions, cwd: string): Promise<KubeConnection | undefined> {
  if (options.kubernetes !== undefined && options.kubeconfig !== undefined) {
    throw new MutualError('MUTUAL_CLI_USAGE', 'give --kubernetes in-cluster or --kubeconfig FILE, not both');
  }
  if (options.kubernetes !== undefined) {
    if (options.kubernetes !== 'in-cluster') {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `--kubernetes ${JSON.stringify(options.kubernetes)}: the only value is in-cluster; outside a cluster give --kubeconfig FILE`,
      );
    }
    // The pod environment is read here rather than in config/: it only exists in-cluster.
    return inClusterConnection(process.env);
  }
  if (options.kubeconfig !== undefined)
    return kubeconfigConnection(resolve(cwd, options.kubeconfig), options.kubeContext);
  return undefined;
}
