// One sidecar: credentials → TLS generations → inbound and outbound listeners → admin. Built by
// createProxy(config, deps); start() binds everything, close() drains, destroy() forces.
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createAdminServer } from '../admin/index.ts';
import type { Clock } from '../clock.ts';
import type { ProxyConfig } from '../config/index.ts';
import type { MutualError } from '../errors.ts';
import { canonicalIp, isLoopbackIp } from '../ip/index.ts';
import { listenIpv6WildcardTwin, listenOn } from '../listen-on.ts';
import { createRegistry, type Registry } from '../metrics/index.ts';
import { decodePemOfType } from '../pki/index.ts';
import { staticWorkloadPolicy, type WorkloadPolicy } from '../policy/index.ts';
import { createMeshTls, type MeshTls } from '../tls/index.ts';
import { renewalDelayMs } from '../workload/index.ts';
import { appProbeRoutes } from './app-probes.ts';
import { createCredentialSource } from './credential-source.ts';
import { createInbound } from './inbound/inbound.ts';
import { ipv6Twin, isNoIpv6Error, originalDestination } from './intercept/index.ts';
import { createProxyMetrics } from './metrics.ts';
import {
  configuredDestinations,
  type DestinationResolver,
  upstreamDestination,
} from './outbound/destinations.ts';
import { createOutbound } from './outbound/outbound.ts';
import type { PolicyClient } from './policy-client.ts';
import type { ProxyLog } from './proxy-log.ts';

export interface ProxyDeps {
  readonly clock: Clock;
  readonly log: ProxyLog;
  /** The current policy for this workload; a static allow-all with the configured modes by default. */
  readonly policy?: () => WorkloadPolicy;
  /** Policies fetched at run time (--policy-url), made with the proxy's TLS; gates readiness. */
  readonly policySource?: (io: { meshTls: () => MeshTls | undefined; registry: Registry }) => PolicyClient;
  readonly destinations?: DestinationResolver;
  readonly registry?: Registry;
  /** Called when POST /shutdown asks the process to drain and exit. */
  readonly onShutdownRequest?: () => void;
}

export interface ProxyAddresses {
  readonly admin?: AddressInfo;
  readonly inbound: readonly { listen: AddressInfo; appPort: number | 'original-destination' }[];
  readonly outbound: readonly { listen: AddressInfo; target: string }[];
}

export function createProxy(config: ProxyConfig, deps: ProxyDeps) {
  const { clock, log } = deps;
  const registry = deps.registry ?? createRegistry();
  const metrics = createProxyMetrics(registry);
  const fallbackPolicy = staticWorkloadPolicy({ mode: config.mode, portModes: config.portModes });
  // Without a policy directory: allow everything, with the configured peer-authentication modes.
  let meshTls: MeshTls | undefined;
  const policySource = deps.policySource?.({ meshTls: () => meshTls, registry });
  const policy = policySource?.policy ?? deps.policy ?? (() => fallbackPolicy);
  const sockets = new Set<Socket | TLSSocket>();
  const track = (socket: Socket | TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const credentials = createCredentialSource(config.credentials, {
    clock,
    log,
    onResult: (result) => metrics.renewals.inc({ result: result === 'failed' ? 'failure' : 'success' }),
  });
  credentials.subscribe((next) => {
    try {
      meshTls = createMeshTls(next, clock);
      outbound.clearSessions();
      metrics.certificateExpiry.set(next.notAfterMs / 1000);
    } catch (error) {
      log.error('cannot build TLS from new credentials; keeping the old ones', {
        error: (error as Error).message,
      });
    }
  });
  const inbound = createInbound({ config, clock, log, metrics, meshTls: () => meshTls, policy, track });
  const destinations =
    deps.destinations ?? configuredDestinations(config, { clock, log, registry, meshTls: () => meshTls });
  const outbound = createOutbound({
    config,
    clock,
    log,
    metrics,
    meshTls: () => meshTls,
    destinations,
    track,
  });

  const listeners: Server[] = [];
  const addresses: {
    inbound: ProxyAddresses['inbound'][number][];
    outbound: ProxyAddresses['outbound'][number][];
    admin?: AddressInfo;
  } = {
    inbound: [],
    outbound: [],
  };
  let isDraining = false;

  function notReadyReason(): string | undefined {
    if (isDraining) return 'draining';
    if (!meshTls) {
      const status = credentials.status();
      return status.error
        ? `no certificate yet: ${status.error.code}: ${status.error.message}`
        : 'no certificate yet';
    }
    if (listeners.length === 0) return 'starting';
    // Every peer refuses an expired certificate: traffic to a pod serving one fails, so it leaves
    // the endpoints (kubelet) and mutual check names the cause instead of a "ready" sidecar.
    if (meshTls.credentials.notAfterMs <= clock.now()) {
      const status = credentials.status();
      return `certificate expired at ${new Date(meshTls.credentials.notAfterMs).toISOString()}${status.error ? `; last renewal failed: ${status.error.code}: ${status.error.message}` : ''}`;
    }
    return policySource?.notReadyReason();
  }

  const admin = createAdminServer({
    registry,
    notReadyReason,
    routes: {
      'GET /identity': (_request, response) => {
        const current = meshTls?.credentials;
        const status = credentials.status();
        const body = current
          ? {
              spiffeId: current.spiffeId,
              certificateChainPem: current.certificateChainPem,
              trustBundlePem: current.trustBundlePem,
              notBefore: new Date(current.notBeforeMs).toISOString(),
              notAfter: new Date(current.notAfterMs).toISOString(),
              renewAt: new Date(
                current.notBeforeMs +
                  renewalDelayMs(current.notBeforeMs, current.notAfterMs, current.notBeforeMs),
              ).toISOString(),
              roots: decodePemOfType(current.trustBundlePem, ['CERTIFICATE'], 'bundle').length,
              lastRenewal: {
                result: status.result,
                at: status.atMs && new Date(status.atMs).toISOString(),
                error: status.error,
              },
            }
          : { spiffeId: null, lastRenewal: status };
        response
          .writeHead(current ? 200 : 503, { 'content-type': 'application/json' })
          .end(`${JSON.stringify(body, null, 2)}\n`);
      },
      'POST /shutdown': (request, response) => {
        if (!isLoopbackIp(request.socket.remoteAddress)) {
          response
            .writeHead(403, { 'content-type': 'text/plain' })
            .end('shutdown is only accepted from localhost\n');
          return;
        }
        // A web page open in a browser on this machine also comes from loopback: browsers mark its
        // requests with Origin or Sec-Fetch-Site; curl, kubectl exec and preStop hooks do not.
        const site = request.headers['sec-fetch-site'];
        if (request.headers.origin !== undefined || (site !== undefined && site !== 'none')) {
          response
            .writeHead(403, { 'content-type': 'text/plain' })
            .end('shutdown is not accepted from a web page (the request has Origin or Sec-Fetch-Site)\n');
          return;
        }
        response.writeHead(202, { 'content-type': 'text/plain' }).end('draining\n');
        deps.onShutdownRequest?.();
      },
      // The app's kubelet probes, rewritten by the injector to /app-health/<container>/<kind>.
      ...appProbeRoutes(config.appProbes),
    },
  });

  async function listen(
    server: Server,
    address: { host: string; port: number; ipv6Only?: boolean },
    what: string,
  ): Promise<AddressInfo> {
    await listenOn(server, address, { code: 'MUTUAL_PROXY_LISTEN_FAILED', what });
    listeners.push(server);
    return server.address() as AddressInfo;
  }

  const listenerOptions = { allowHalfOpen: true, pauseOnConnect: true, noDelay: true };

  /**
   * A transparent listener on 0.0.0.0 / 127.0.0.1 also takes [::] / [::1], where ip6tables REDIRECT
   * sends IPv6 (intercept/ipv6-twin.ts). Skipped without IPv6, and when port 0 (any free port)
   * picked one that is taken for IPv6.
   */
  async function listenIpv6Twin(
    onSocket: (socket: Socket) => void,
    configured: { host: string; port: number },
    port: number,
    what: string,
  ) {
    const twin = ipv6Twin(configured.host);
    if (twin === undefined) return;
    await listen(
      createServer(listenerOptions, onSocket),
      { host: twin, port, ipv6Only: true },
      `${what}, IPv6`,
    ).catch((error: MutualError) => {
      const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
      if (!isNoIpv6Error(error.cause) && !(configured.port === 0 && code === 'EADDRINUSE')) throw error;
    });
  }

  return {
    registry,
    metrics,
    async start(): Promise<ProxyAddresses> {
      credentials.start();
      if (config.adminListen) {
        addresses.admin = await listen(admin as unknown as Server, config.adminListen, 'admin');
        // The kubelet probes the pod's IP, IPv6 in an IPv6-only cluster.
        await listenIpv6WildcardTwin(admin as unknown as Server, config.adminListen, {
          code: 'MUTUAL_PROXY_LISTEN_FAILED',
          what: 'admin',
        });
      }
      for (const entry of config.inbound) {
        const server = createServer(
          listenerOptions,
          (socket) => void inbound.accept(socket, { kind: 'fixed', port: entry.appPort }),
        );
        addresses.inbound.push({
          listen: await listen(server, entry.listen, `inbound for app port ${entry.appPort}`),
          appPort: entry.appPort,
        });
      }
      if (config.inboundListen) {
        let own: AddressInfo | undefined;
        const onSocket = (socket: Socket) =>
          void inbound.accept(socket, {
            kind: 'original-destination',
            resolve: (raw) => {
              const destination = originalDestination(raw);
              // A connection straight to the listener (not redirected) would loop back to us.
              if (!destination || destination.port === own?.port) return undefined;
              return destination.port;
            },
          });
        own = await listen(
          createServer(listenerOptions, onSocket),
          config.inboundListen,
          'transparent inbound',
        );
        await listenIpv6Twin(onSocket, config.inboundListen, own.port, 'transparent inbound');
        addresses.inbound.push({ listen: own, appPort: 'original-destination' });
      }
      for (const upstream of config.upstreams) {
        const destination = upstreamDestination(upstream);
        const label = `${upstream.host}:${upstream.port}`;
        const server = createServer(
          listenerOptions,
          (socket) =>
            void outbound.accept(socket, {
              kind: 'meshed',
              destination,
              label,
              fullHandshake: upstream.fullHandshake,
            }),
        );
        addresses.outbound.push({
          listen: await listen(server, upstream.listen, `upstream ${upstream.serverId}`),
          target: upstream.serverId,
        });
      }
      if (config.outboundListen) {
        let own: AddressInfo | undefined;
        const onSocket = (socket: Socket) => {
          const destination = originalDestination(socket);
          if (!destination || (destination.port === own?.port && isLocal(destination.address))) {
            metrics.outboundRefused.inc({ reason: 'no_original_destination', destination: '' });
            socket.destroy();
            return;
          }
          void outbound.accept(socket, {
            kind: 'original-destination',
            address: destination.address,
            port: destination.port,
          });
        };
        own = await listen(
          createServer(listenerOptions, onSocket),
          config.outboundListen,
          'transparent outbound',
        );
        await listenIpv6Twin(onSocket, config.outboundListen, own.port, 'transparent outbound');
        addresses.outbound.push({ listen: own, target: 'original-destination' });
      }
      return addresses;
    },
    ready: () => notReadyReason() === undefined,
    notReadyReason,
    reloadCredentials: () => credentials.reload(),
    /** Stop accepting, let open connections finish (up to the drain timeout), then close the rest. */
    async close(): Promise<void> {
      isDraining = true;
      for (const server of listeners) if (server !== (admin as unknown)) server.close();
      const deadline = clock.now() + config.drainTimeoutMs;
      while (sockets.size > 0 && clock.now() < deadline) {
        // Keep-alive connections between requests are not work in progress: close them as they idle.
        inbound.closeIdle();
        outbound.closeIdle();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      this.destroy();
    },
    destroy() {
      isDraining = true;
      credentials.close();
      inbound.close();
      outbound.close();
      destinations.close?.();
      policySource?.close();
      for (const socket of sockets) socket.destroy();
      for (const server of listeners) server.close();
      admin.closeAllConnections();
    },
  };
}

function isLocal(address: string): boolean {
  return isLoopbackIp(address) || canonicalIp(address) === '0.0.0.0';
}

export type Proxy = ReturnType<typeof createProxy>;
