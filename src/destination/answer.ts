// What the destination service answers about one address or name, and how a request names it.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { MutualError } from '../errors.ts';
import { canonicalIp } from '../ip/index.ts';

/** How the proxies should treat the bytes: opaque (no detection), http, or detect from the first bytes. */
export type DestinationProtocol = 'opaque' | 'http' | 'detect';
export const PROTOCOLS: readonly DestinationProtocol[] = ['opaque', 'http', 'detect'];

/** Why a destination is not meshed: data, for the proxy's metrics and for people. */
export type UnmeshedReason =
  | 'unknown'
  | 'not-injected'
  | 'skipped-port'
  | 'not-running'
  | 'host-network'
  | 'unknown-port'
  | 'no-endpoints'
  | 'mixed-endpoints'
  | 'identities-differ';

export interface DestinationAnswer {
  readonly meshed: boolean;
  /** The SPIFFE ID the destination's proxy must prove (meshed only). */
  readonly serverId?: string;
  readonly protocol?: DestinationProtocol;
  readonly reason?: UnmeshedReason;
  /** What the address turned out to be, e.g. pod demo/web-5d9c or service demo/web. */
  readonly kind?: 'pod' | 'service' | 'static';
  readonly name?: string;
}

/** A source of answers; undefined means "this source knows nothing about it". */
export interface DestinationSource {
  readonly name: string;
  resolveAddress(address: string, port: number): DestinationAnswer | undefined;
  resolveName(host: string, port: number): DestinationAnswer | undefined;
  /** Why it cannot answer yet (first list not done, file unreadable), or undefined. */
  notReadyReason(): string | undefined;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  close(): void;
}

export type DestinationTarget =
  | { readonly kind: 'address'; readonly address: string; readonly port: number; readonly text: string }
  | { readonly kind: 'name'; readonly host: string; readonly port: number; readonly text: string };

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT` (e.g. web.demo.svc.cluster.local:8080), or a coded 400. */
export function parseDestinationTarget(text: string): DestinationTarget {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw requestInvalid(
      `${JSON.stringify(text)} is not a destination: write IP:PORT, [IPv6]:PORT or <service>.<namespace>.svc.<cluster-domain>:PORT, with a port from 1 to 65535`,
    );
  }
  const host = (match[1] ?? match[2]!).toLowerCase();
  if (match[1] !== undefined && isIP(host) !== 6) {
    throw requestInvalid(`${JSON.stringify(match[1])} in brackets is not an IPv6 address`);
  }
  const address = canonicalIp(host);
  if (address !== undefined) {
    return {
      kind: 'address',
      address,
      port,
      text: `${address.includes(':') ? `[${address}]` : address}:${port}`,
    };
  }
  if (/^[\d.]+$/.test(host) || !HOST_NAME.test(host)) {
    throw requestInvalid(
      `${JSON.stringify(host)} is neither an IP address nor a DNS name (letters, digits and "-" in dot-separated labels)`,
    );
  }
  return { kind: 'name', host, port, text: `${host}:${port}` };
}

/** A short, stable version of an answer: equal answers have equal versions. */
export function answerVersion(answer: DestinationAnswer): string {
  const canonical = JSON.stringify([
    answer.meshed,
    answer.serverId ?? '',
    answer.protocol ?? '',
    answer.reason ?? '',
    answer.kind ?? '',
    answer.name ?? '',
  ]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

export function requestInvalid(message: string): MutualError {
  return new MutualError('MUTUAL_DESTINATION_REQUEST_INVALID', message);
}
