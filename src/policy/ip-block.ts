// IP addresses and CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a single address) for ipBlocks
// and source.ip, compiled into one node:net BlockList per family. As in Envoy (CidrRange), an
// address matches only blocks of its own family: ::/0 holds no IPv4 client. IPv4-mapped IPv6 is
// IPv4 on both sides: a client seen as ::ffff:10.1.2.3 is 10.1.2.3, a block ::ffff:10.0.0.0/104 is
// 10.0.0.0/8 (node:net's BlockList alone would put every IPv4 client in ::/0).
import { BlockList, isIP } from 'node:net';
import { canonicalIp } from '../ip/index.ts';

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

/** Compiles blocks that ipBlockProblem passed. */
export function compileIpMatcher(blocks: readonly string[]): IpMatcher {
  const lists = { 4: new BlockList(), 6: new BlockList() };
  for (const block of blocks) {
    const [written = '', prefix] = block.split('/');
    const address = canonicalIp(written) ?? written;
    // An IPv4-mapped block (::ffff:10.0.0.0/104) is its IPv4 block; a shorter prefix stays IPv6.
    const bits = prefix === undefined ? undefined : Number(prefix) - (isIP(written) === 6 ? 96 : 0);
    if (isIP(address) === 4 && (bits === undefined || bits >= 0)) {
      if (bits === undefined) lists[4].addAddress(address, 'ipv4');
      else lists[4].addSubnet(address, bits, 'ipv4');
    } else if (prefix === undefined) lists[6].addAddress(written, 'ipv6');
    else lists[6].addSubnet(written, Number(prefix), 'ipv6');
  }
  return (ip) => {
    const address = canonicalIp(ip);
    const family = address === undefined ? 0 : isIP(address);
    if (family === 0) return false;
    return family === 4 ? lists[4].check(address!, 'ipv4') : lists[6].check(address!, 'ipv6');
  };
}
