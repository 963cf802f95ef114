import { isIP, SocketAddress } from 'node:net';

/**
 * The one spelling of an IP address, or undefined when `text` is not one: IPv4 as written
 * (dotted decimal, no leading zeros); IPv6 lower-case and compressed as inet_ntop writes it; an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d in any spelling: upper-case, hex ::ffff:7f00:1, long)
 * as its IPv4 address, which is what the kernel connects to. A zone id stays on IPv6 (fe80::1%eth0)
 * and goes with the mapped prefix. Nothing else is unwrapped: ::ffff:0:a.b.c.d (IPv4-translated),
 * ::a.b.c.d (IPv4-compatible) and 64:ff9b::a.b.c.d (NAT64) are IPv6 addresses of their own. No
 * trimming: ' 127.0.0.1' is not an address.
 */
export function canonicalIp(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6) return undefined;
  const zoneAt = text.indexOf('%');
  const address = new SocketAddress({ address: zoneAt === -1 ? text : text.slice(0, zoneAt), family: 'ipv6' })
    .address;
  if (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  return zoneAt === -1 ? address : `${address}${text.slice(zoneAt)}`;
}

/**
 * 127.0.0.0/8 or ::1 in any spelling canonicalIp reads (::ffff:127.0.0.1, ::FFFF:7F00:1, ::1%lo):
 * a peer on this machine's loopback. Anything that is not an IP address is not loopback.
 */
export function isLoopbackIp(text: string | undefined): boolean {
  const address = canonicalIp(text)?.split('%')[0];
  if (address === undefined) return false;
  return address === '::1' || (isIP(address) === 4 && address.startsWith('127.'));
}
