import type { ExplicitUpstream, StaticDestination } from '../../config/index.ts';

/** Where a meshed destination's proxy listens and who it must prove to be. */
export interface MeshedDestination {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
}

/**
 * Destination lookup behind one interface: the static table from config now; the mesh's
 * destination API plugs in here later. undefined = not meshed.
 */
export interface DestinationResolver {
  resolve(address: string, port: number): MeshedDestination | undefined;
}

export function staticDestinations(table: readonly StaticDestination[]): DestinationResolver {
  const byAddress = new Map(table.map((entry) => [`${entry.address}:${entry.port}`, entry]));
  return {
    resolve(address, port) {
      const entry = byAddress.get(`${address}:${port}`);
      return entry && { serverId: entry.serverId, host: entry.address, port: entry.port };
    },
  };
}

export function upstreamDestination(upstream: ExplicitUpstream): MeshedDestination {
  return { serverId: upstream.serverId, host: upstream.host, port: upstream.port };
}
