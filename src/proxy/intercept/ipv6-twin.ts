// The IPv6 twin of a transparent listener. ip6tables REDIRECT sends inbound IPv6 TCP to an IPv6
// address of the pod and outbound IPv6 TCP to ::1, which an IPv4 socket never sees; so a
// transparent listener on the IPv4 wildcard or loopback also listens on its IPv6 counterpart.

/**
 * `0.0.0.0` → `::` (bound IPv6-only, beside the IPv4 socket), `127.0.0.1` → `::1`; any other host
 * (already IPv6, or one specific address) has no twin.
 */
export function ipv6Twin(host: string): string | undefined {
  if (host === '0.0.0.0') return '::';
  if (host === '127.0.0.1') return '::1';
  return undefined;
}

/** Errors binding the twin that mean "this host or namespace has no IPv6": the twin is skipped. */
export { isNoIpv6Error } from '../../listen-on.ts';
