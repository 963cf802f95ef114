import type { Clock } from '../../clock.ts';
import type { ExplicitUpstream, ProxyConfig, StaticDestination } from '../../config/index.ts';
import { canonicalIp } from '../../ip/index.ts';
import type { Registry } from '../../metrics/index.ts';
import type { MeshTls } from '../../tls/index.ts';
import type { ProxyLog } from '../proxy-log.ts';
import { createDestinationClient } from './destination-client.ts';

/** Where a meshed destination's proxy listens and who it must prove to be. */
export interface MeshedDestination {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  /**
   * The destination declared this port opaque (server speaks first, or not HTTP): carry its bytes
   * at once instead of waiting up to the detection timeout for the app to speak.
   */
  readonly opaque?: boolean;
}

/**
 * The key under which connections and TLS sessions to a destination are reused. The expected
 * identity and the credential generation are part of it: a connection or session is only ever
 * reused for the identity it was verified against, with the credentials in force (Node skips the
 * server identity check on a resumed session).
 */
export function reuseKey(destination: MeshedDestination, meshTls: MeshTls): string {
  return `${destination.host}:${destination.port}|${destination.serverId}|${meshTls.generation}`;
}

/** The destination as an http:// origin: only names a pool or session, the proxy connects itself. */
export function originOf(destination: MeshedDestination): string {
  // An IPv6 host goes in brackets, without a zone.
  const host = destination.host.includes(':') ? `[${destination.host.split('%')[0]}]` : destination.host;
  return `http://${host}:${destination.port}`;
}

/**
 * Destination lookup behind one interface: the static table from config, or the destination
 * service (`--destination-url`) in front of it. undefined = not meshed (or unknown). A Promise
 * only when the answer has to be fetched; cached and static answers stay synchronous.
 */
export interface DestinationResolver {
  resolve(
    address: string,
    port: number,
  ): MeshedDestination | undefined | Promise<MeshedDestination | undefined>;
  close?(): void;
}

/**
 * The `--destination` table, keyed by the canonical address (src/ip), so `2001:DB8:0::5` finds
 * `2001:db8::5` and `::ffff:198.18.0.5` the IPv4 address an original destination reports.
 */
export function staticDestinations(table: readonly StaticDestination[]): DestinationResolver {
  const key = (address: string, port: number) => `${canonicalIp(address) ?? address}:${port}`;
  const byAddress = new Map(table.map((entry) => [key(entry.address, entry.port), entry]));
  return {
    resolve(address, port) {
      const entry = byAddress.get(key(address, port));
      return entry && { serverId: entry.serverId, host: entry.address, port: entry.port };
    },
  };
}

/** The static `--destination` entries win (explicit); the destination service answers the rest. */
export function configuredDestinations(
  config: Pick<
    ProxyConfig,
    'destinations' | 'destinationUrl' | 'destinationServerId' | 'destinationTimeoutMs'
  >,
  deps: { clock: Clock; log: ProxyLog; registry: Registry; meshTls: () => MeshTls | undefined },
): DestinationResolver {
  const table = staticDestinations(config.destinations);
  if (!config.destinationUrl) return table;
  const service = createDestinationClient({
    ...deps,
    url: config.destinationUrl,
    ...(config.destinationServerId ? { serverId: config.destinationServerId } : {}),
    lookupTimeoutMs: config.destinationTimeoutMs,
  });
  return {
    resolve: (address, port) => table.resolve(address, port) ?? service.resolve(address, port),
    close: () => service.close(),
  };
}

export function upstreamDestination(upstream: ExplicitUpstream): MeshedDestination {
  return { serverId: upstream.serverId, host: upstream.host, port: upstream.port };
}
