// `mutual destination serve`: credentials (its own SVID, like a proxy's) → sources (table file,
// Kubernetes; policies from Kubernetes or a directory) → the mTLS API → admin. Built by startDestinationService(config); close() stops it.
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import { createAdminServer } from '../admin/index.ts';
import type { Clock } from '../clock.ts';
import type { ListenAddress, ProxyCredentialsConfig } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import { createKubeClient, type InformerEvent, type KubeConnection } from '../k8s/kube-client/index.ts';
import { listenDualStack } from '../listen-on.ts';
import { createRegistry, Gauge, registerFileDescriptorGauges } from '../metrics/index.ts';
import { createCredentialSource, loadCredentialFiles, type ProxyLog } from '../proxy/index.ts';
import { createMeshTls, type MeshCredentials, type MeshTls } from '../tls/index.ts';
import type { DestinationSource } from './answer.ts';
import { createFileSource } from './file-source.ts';
import { createDestinationApiServer } from './http-api.ts';
import { createKubernetesPolicySource } from './kubernetes-policy-source.ts';
import { createKubernetesSource } from './kubernetes-source.ts';
import { createDestinationLookup, type DestinationLookup } from './lookup.ts';
import { createDestinationMetrics } from './metrics.ts';
import { createPolicyApi } from './policy-api.ts';
import { createDirectoryPolicySource, type PolicySource } from './policy-source.ts';

export interface DestinationServiceConfig {
  readonly listen: ListenAddress;
  readonly adminListen: ListenAddress;
  /** The service's own SVID: from the identity service, or files (as a proxy gets its own). */
  readonly credentials: ProxyCredentialsConfig;
  /** A destination table file (YAML/JSON), watched. */
  readonly tableFile?: string;
  /** Watch Pods, Services and EndpointSlices through this API server. */
  readonly kubernetes?: KubeConnection;
  /** Without Kubernetes: serve this directory's PeerAuthentication / AuthorizationPolicy files. */
  readonly policyDir?: string;
  /** The cluster DNS domain for <service>.<namespace>.svc.<domain> names; default cluster.local. */
  readonly clusterDomain?: string;
  /** Open API connections in all; default 3/4 of the descriptor limit (defaultMaxConnections). */
  readonly maxConnections?: number;
  /** Open API connections from one client address; default DEFAULT_MAX_CONNECTIONS_PER_ADDRESS. */
  readonly maxConnectionsPerAddress?: number;
  /** For tests: shorter watches and backoff. */
  readonly kubernetesTuning?: {
    watchTimeoutSeconds?: number;
    backoff?: { initialMs: number; maxMs: number };
  };
  readonly clock: Clock;
  readonly log: ProxyLog;
}

export interface DestinationService {
  readonly apiUrl: string;
  readonly adminUrl: string;
  readonly spiffeId: string;
  readonly lookup: DestinationLookup;
  close(): Promise<void>;
}

/** The destination service's own SPIFFE ID, which proxies expect when they call it. */
export function destinationServiceId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/mutual-system/sa/destination`;
}

export async function startDestinationService(config: DestinationServiceConfig): Promise<DestinationService> {
  const { clock, log } = config;
  if (!config.tableFile && !config.kubernetes && !config.policyDir) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'give a source of destinations: --file TABLE, --kubernetes in-cluster or --kubeconfig FILE (or policies: --policy-dir DIR)',
    );
  }
  if (config.kubernetes && config.policyDir) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'give --policy-dir DIR or Kubernetes, not both: with Kubernetes the policies are the cluster objects',
    );
  }
  // Bad static credentials fail now, not after a wait (the identity service may come up later).
  if (config.credentials.kind === 'files') await loadCredentialFiles(config.credentials, clock);
  const registry = createRegistry();
  registerFileDescriptorGauges(registry, 'the destination service');
  const metrics = createDestinationMetrics(registry);
  let meshTls: MeshTls | undefined;
  let api: Http2SecureServer | undefined;
  let lookup: DestinationLookup | undefined;
  let policies: (PolicySource & { start?: () => void }) | undefined;
  const credentials = createCredentialSource(config.credentials, { clock, log, onResult: () => {} });
  const firstCredentials = new Promise<MeshCredentials>((resolve) => credentials.subscribe(resolve));
  credentials.subscribe((next) => {
    try {
      meshTls = createMeshTls(next, clock);
      api?.setSecureContext(meshTls.unverifiedServerOptions);
    } catch (error) {
      log.error('cannot build TLS from new credentials; keeping the old ones', {
        error: (error as Error).message,
      });
    }
  });

  const admin = createAdminServer({
    registry,
    notReadyReason: () => {
      if (!meshTls) {
        const status = credentials.status();
        return status.error
          ? `no certificate yet: ${status.error.code}: ${status.error.message}`
          : 'no certificate yet';
      }
      return lookup ? (lookup.notReadyReason() ?? policies?.notReadyReason()) : 'starting';
    },
  });
  const adminFailure = { code: 'MUTUAL_DESTINATION_LISTEN_FAILED', what: 'admin, --admin-listen' } as const;
  // On 0.0.0.0 (as installed), [::] too: in an IPv6-only cluster the kubelet and the sidecars
  // reach the pod at its IPv6 address.
  await listenDualStack(admin as unknown as Server, config.adminListen, adminFailure).catch(
    (error: unknown) => {
      if (admin.listening) admin.close();
      throw error;
    },
  );
  const sources: DestinationSource[] = [];
  const onInformerEvent = (resource: string, event: InformerEvent) => {
    metrics.kubernetesEvents.inc({ resource, event: event.kind });
    if (event.kind === 'failed')
      log.warn('Kubernetes watch failed; retrying', {
        resource,
        code: event.error.code,
        error: event.error.message,
        retryInMs: event.retryInMs,
      });
    else if (event.kind === 'expired')
      log.info('Kubernetes watch expired (410 Gone); relisting', { resource });
    else
      log.info('Kubernetes listed', {
        resource,
        objects: event.objects,
        resourceVersion: event.resourceVersion,
      });
  };
  let own: MeshCredentials;
  try {
    // A bad table fails now; the Kubernetes source needs the trust domain of our first certificate.
    if (config.tableFile) {
      sources.push(
        await createFileSource(config.tableFile, {
          onLoad: (result) => {
            metrics.tableReloads.inc({ result: result.ok ? 'ok' : 'refused' });
            if (result.ok)
              log.info('destination table loaded', { file: config.tableFile, entries: result.entries });
            else
              log.warn('destination table refused; the last good one keeps answering', {
                code: result.error.code,
                error: result.error.message,
              });
          },
        }),
      );
    }
    credentials.start();
    own = await firstCredentials;
    const trustDomain = new URL(own.spiffeId).host;
    if (config.kubernetes) {
      const source = createKubernetesSource({
        client: createKubeClient(config.kubernetes),
        trustDomain,
        ...(config.clusterDomain ? { clusterDomain: config.clusterDomain } : {}),
        ...config.kubernetesTuning,
        onInformerEvent,
      });
      source.start();
      sources.push(source);
      const policySource = createKubernetesPolicySource({
        client: createKubeClient(config.kubernetes),
        ...config.kubernetesTuning,
        onInformerEvent,
        onPresence: (resource, isPresent) =>
          isPresent
            ? log.info('policy resource found; its objects now apply', { resource })
            : log.info(
                'policy resource not served by the API server (CRD not installed); asking again later',
                {
                  resource,
                },
              ),
        onSkipped: (skipped) =>
          log.warn(
            skipped.reason === 'unsupported'
              ? 'policy object uses what Mutual cannot enforce; a stricter stand-in applies in its place'
              : skipped.reason === 'fail_closed'
                ? 'ALLOW policy object is invalid; it applies as an ALLOW of nothing to the workloads it selects until it is fixed'
                : 'policy object skipped; the other policies apply',
            {
              code: 'MUTUAL_DESTINATION_POLICY_SKIPPED',
              apiVersion: skipped.apiVersion,
              kind: skipped.kind,
              policy: skipped.id,
              error: skipped.message,
            },
          ),
        onRebuild: (served, skipped) => {
          for (const kind of ['PeerAuthentication', 'AuthorizationPolicy'])
            metrics.policies.set({ kind }, served.filter((entry) => entry.resource.kind === kind).length);
          for (const reason of ['invalid', 'shadowed', 'unsupported', 'fail_closed'])
            metrics.policiesSkipped.set(
              { reason },
              skipped.filter((entry) => entry.reason === reason).length,
            );
        },
      });
      policySource.start();
      policies = policySource;
    }
    if (config.policyDir) {
      policies = await createDirectoryPolicySource(config.policyDir, {
        onLoad: (result) => {
          if (result.ok)
            log.info('policy directory loaded', { directory: config.policyDir, policies: result.policies });
          else
            log.warn('policy files refused; the last good set keeps serving', {
              code: result.error.code,
              error: result.error.message,
            });
        },
      });
    }
  } catch (error) {
    policies?.close();
    for (const source of sources) source.close();
    credentials.close();
    admin.close();
    throw error;
  }
  lookup = createDestinationLookup(sources);
  const server = createDestinationApiServer(
    {
      lookup,
      meshTls: () => meshTls,
      clock,
      metrics,
      warnSampled: (message, key, fields) => log.warnSampled(message, key, fields),
      handlePolicies: createPolicyApi(policies, metrics),
      ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
      ...(config.maxConnectionsPerAddress === undefined
        ? {}
        : { maxConnectionsPerAddress: config.maxConnectionsPerAddress }),
    },
    meshTls!,
  );
  new Gauge({
    name: 'mutual_destination_connections_open',
    help: 'API connections open, by what they are doing (handshake, headers: no request yet, idle, held: a long poll, body, answering). At the connection limit the oldest but answering ones are closed for new ones.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [state, count] of Object.entries(server.connections.openByState()))
        this.set({ state }, count);
    },
  });
  api = server;
  const apiFailure = { code: 'MUTUAL_DESTINATION_LISTEN_FAILED', what: 'API, --listen' } as const;
  await listenDualStack(server as unknown as Server, config.listen, apiFailure).catch((error: unknown) => {
    lookup?.close();
    policies?.close();
    credentials.close();
    admin.close();
    if (server.listening) server.close();
    throw error;
  });
  const apiAddress = server.address() as AddressInfo;
  const adminAddress = admin.address() as AddressInfo;
  const sockets = new Set<import('node:tls').TLSSocket>();
  server.on('secureConnection', (socket: import('node:tls').TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    apiUrl: `https://${urlHost(apiAddress)}:${apiAddress.port}`,
    adminUrl: `http://${urlHost(adminAddress)}:${adminAddress.port}`,
    spiffeId: own.spiffeId,
    lookup,
    async close() {
      lookup?.close();
      policies?.close();
      credentials.close();
      // Long polls end now: their clients retry against whoever serves next.
      for (const socket of sockets) socket.destroy();
      await Promise.all([closeServer(server), closeServer(admin as unknown as Server)]);
    },
  };
}

function urlHost(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]` : address.address;
}

function closeServer(server: Server & { closeAllConnections?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}
