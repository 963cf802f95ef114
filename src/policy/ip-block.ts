// IP addresses and CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a single address) for ipBlocks
// and source.ip, compiled into a node:net BlockList. IPv4-mapped IPv6 sources match IPv4 blocks.
import { BlockList, isIP } from 'node:net';

/** Why a block is not an IP or CIDR, or undefined if it is fine. */
export function ipBlockProblem(block: string): string | undefined {
  const [address = '', prefix, ...rest] = block.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0)
    return `"${block}" is not an IP address or CIDR block such as 10.0.0.0/8`;
  if (prefix === undefined) return undefined;
  const bits = Number(prefix);
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(prefix) || bits > max) return `"${block}" has a prefix length outside 0–${max}`;
  return undefined;
}

export type IpMatcher = (ip: string) => boolean;

export function compileIpMatcher(blocks: readonly string[]): IpMatcher {
  const list = new BlockList();
  for (const block of blocks) {
    const [address = '', prefix] = block.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return (ip) => {
    const address = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
    const family = isIP(address);
    if (family === 0) return false;
    return list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}
