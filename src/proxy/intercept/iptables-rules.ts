import { isIPv4, isIPv6 } from 'node:net';
import { MutualError } from '../../errors.ts';

// The NAT rules that make interception transparent, as iptables-restore input (pure: no I/O).
// Shape after Linkerd's proxy-init: two chains of our own, entered from PREROUTING (inbound)
// and OUTPUT (outbound), each a list of RETURN exceptions ending in one REDIRECT. The same
// chains go into the nat table of each family: IPv4 for iptables, IPv6 for ip6tables.

export const INBOUND_CHAIN = 'MUTUAL_INBOUND';
export const OUTBOUND_CHAIN = 'MUTUAL_OUTBOUND';
/** Every chain Mutual owns starts with this; uninstall removes all of them. */
export const CHAIN_PREFIX = 'MUTUAL_';

export const DEFAULT_INBOUND_PORT = 4143;
export const DEFAULT_OUTBOUND_PORT = 4140;
export const DEFAULT_ADMIN_PORT = 4191;
export const DEFAULT_PROXY_UID = 2102;

/** 4: iptables (nat table of IPv4); 6: ip6tables (nat table of IPv6). */
export type IpFamily = 4 | 6;

/** Loopback destinations: never redirected (the app talking to itself, or to the proxy). */
export const LOOPBACK_CIDR: Readonly<Record<IpFamily, string>> = { 4: '127.0.0.0/8', 6: '::1/128' };

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export interface InterceptRules {
  /** Where inbound TCP is redirected (the proxy's inbound listener). */
  readonly inboundPort: number;
  /** Where outbound TCP is redirected (the proxy's outbound listener). */
  readonly outboundPort: number;
  /** Traffic from this uid (the proxy itself) is never redirected, or the proxy would loop. */
  readonly proxyUid: number;
  /** The proxy's admin port: always reachable directly, for probes. */
  readonly adminPort: number;
  readonly skipInboundPorts: readonly PortRange[];
  readonly skipOutboundPorts: readonly PortRange[];
  /** CIDRs (a.b.c.d/n or x:y::/n) whose traffic leaves without the proxy; each goes to its family's rules. */
  readonly skipOutboundSubnets: readonly string[];
}

/** Fills in the defaults and checks every value, naming the flag that was wrong. */
export function interceptRules(options: Partial<InterceptRules> = {}): InterceptRules {
  const rules: InterceptRules = {
    inboundPort: checkPort(options.inboundPort ?? DEFAULT_INBOUND_PORT, '--inbound-port'),
    outboundPort: checkPort(options.outboundPort ?? DEFAULT_OUTBOUND_PORT, '--outbound-port'),
    proxyUid: checkUid(options.proxyUid ?? DEFAULT_PROXY_UID),
    adminPort: checkPort(options.adminPort ?? DEFAULT_ADMIN_PORT, '--admin-port'),
    skipInboundPorts: (options.skipInboundPorts ?? []).map((r) => checkRange(r, '--skip-inbound-ports')),
    skipOutboundPorts: (options.skipOutboundPorts ?? []).map((r) => checkRange(r, '--skip-outbound-ports')),
    skipOutboundSubnets: (options.skipOutboundSubnets ?? []).map((s) =>
      parseSubnet(s, '--skip-outbound-subnets'),
    ),
  };
  if (rules.inboundPort === rules.outboundPort) {
    throw usage(
      `--inbound-port and --outbound-port are both ${rules.inboundPort}: give them different ports`,
    );
  }
  return Object.freeze(rules);
}

/** `"25,443,8000-8100"` → port ranges. An empty string is an empty list. */
export function parsePortList(text: string, flag: string): PortRange[] {
  return splitList(text).map((item) => {
    const match = /^(\d{1,5})(?:[-:](\d{1,5}))?$/.exec(item);
    if (!match) {
      throw usage(`${flag} ${JSON.stringify(item)} is not a port or range: write e.g. 25,443,8000-8100`);
    }
    return checkRange({ from: Number(match[1]), to: Number(match[2] ?? match[1]) }, flag);
  });
}

/** `"10.0.0.0/8,192.168.1.5,fd00::/8"` → CIDRs (a bare address is /32, or /128 for IPv6). */
export function parseSubnetList(text: string, flag: string): string[] {
  return splitList(text).map((item) => parseSubnet(item, flag));
}

/** The family of a CIDR from `parseSubnetList`. */
export function subnetFamily(cidr: string): IpFamily {
  return cidr.includes(':') ? 6 : 4;
}

/**
 * iptables-restore (family 4) or ip6tables-restore (family 6) input, for `--noflush`, that installs
 * the rules in one transaction. `currentNat` is today's `iptables-save -t nat` of that family: jumps
 * into our chains found there are deleted first, and declaring our chains flushes them, so running
 * it twice leaves one copy of everything. Skipped subnets of the other family are left out.
 */
export function installRestoreInput(rules: InterceptRules, currentNat = '', family: IpFamily = 4): string {
  const inbound = [
    // Probes reach the admin port directly; everything else inbound goes to the proxy, including
    // the outbound port, so no outsider can use the outbound listener as an open relay.
    ...[{ from: rules.adminPort, to: rules.adminPort }, ...rules.skipInboundPorts].map(
      (range) => `-A ${INBOUND_CHAIN} -p tcp --dport ${formatRange(range)} -j RETURN`,
    ),
    `-A ${INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${rules.inboundPort}`,
  ];
  const outbound = [
    `-A ${OUTBOUND_CHAIN} -m owner --uid-owner ${rules.proxyUid} -j RETURN`,
    `-A ${OUTBOUND_CHAIN} -o lo -j RETURN`,
    `-A ${OUTBOUND_CHAIN} -d ${LOOPBACK_CIDR[family]} -j RETURN`,
    ...rules.skipOutboundPorts.map(
      (range) => `-A ${OUTBOUND_CHAIN} -p tcp --dport ${formatRange(range)} -j RETURN`,
    ),
    ...rules.skipOutboundSubnets
      .filter((subnet) => subnetFamily(subnet) === family)
      .map((subnet) => `-A ${OUTBOUND_CHAIN} -d ${subnet} -j RETURN`),
    `-A ${OUTBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${rules.outboundPort}`,
  ];
  return restoreInput([
    ...deleteJumps(currentNat),
    `:${INBOUND_CHAIN} - [0:0]`,
    `:${OUTBOUND_CHAIN} - [0:0]`,
    ...inbound,
    ...outbound,
    `-A PREROUTING -p tcp -j ${INBOUND_CHAIN}`,
    `-A OUTPUT -p tcp -j ${OUTBOUND_CHAIN}`,
  ]);
}

/** iptables-restore input that removes every MUTUAL_ chain and every jump into one; undefined if none. */
export function uninstallRestoreInput(currentNat: string): string | undefined {
  const chains = installedChains(currentNat);
  if (chains.length === 0) return undefined;
  return restoreInput([
    ...deleteJumps(currentNat),
    // Declaring a chain flushes it, so -X finds it empty.
    ...chains.map((chain) => `:${chain} - [0:0]`),
    ...chains.map((chain) => `-X ${chain}`),
  ]);
}

/** Names of the MUTUAL_ chains in an `iptables-save -t nat` dump. */
export function installedChains(currentNat: string): string[] {
  const chains: string[] = [];
  for (const line of natSection(currentNat)) {
    const match = /^:(\S+)/.exec(line);
    if (match?.[1]?.startsWith(CHAIN_PREFIX)) chains.push(match[1]);
  }
  return chains;
}

/** `-D` for each rule of a chain not ours that jumps into one of ours (taken verbatim from the dump). */
function deleteJumps(currentNat: string): string[] {
  return natSection(currentNat)
    .filter((line) => {
      const match = /^-A (\S+) .*-j (\S+)$/.exec(line);
      return !!match && !match[1]!.startsWith(CHAIN_PREFIX) && match[2]!.startsWith(CHAIN_PREFIX);
    })
    .map((line) => `-D${line.slice(2)}`);
}

function natSection(dump: string): string[] {
  const lines = dump.split('\n').map((line) => line.trim());
  const start = lines.indexOf('*nat');
  if (start < 0) return [];
  const end = lines.indexOf('COMMIT', start);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

function restoreInput(lines: string[]): string {
  return `*nat\n${lines.join('\n')}\nCOMMIT\n`;
}

function formatRange(range: PortRange): string {
  return range.from === range.to ? String(range.from) : `${range.from}:${range.to}`;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function parseSubnet(text: string, flag: string): string {
  const [address = '', prefix, extra] = text.trim().split('/');
  const family = isIPv4(address) ? 4 : isIPv6(address) && !address.includes('%') ? 6 : undefined;
  const maxBits = family === 6 ? 128 : 32;
  const bits = prefix === undefined ? maxBits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
  if (family === undefined || extra !== undefined) {
    throw usage(
      `${flag} ${JSON.stringify(text)} is not an IPv4 or IPv6 CIDR: write e.g. 10.0.0.0/8, 192.168.1.5 or fd00::/8`,
    );
  }
  if (!(bits >= 0 && bits <= maxBits)) {
    throw usage(
      `${flag} ${JSON.stringify(text)} has a bad prefix length: an IPv${family} CIDR takes /0 to /${maxBits}`,
    );
  }
  return `${family === 6 ? address.toLowerCase() : address}/${bits}`;
}

function checkPort(port: number, flag: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw usage(`${flag} ${port} is not a TCP port: give a number from 1 to 65535`);
  }
  return port;
}

function checkRange(range: PortRange, flag: string): PortRange {
  checkPort(range.from, flag);
  checkPort(range.to, flag);
  if (range.from > range.to) {
    throw usage(`${flag} ${range.from}-${range.to} is backwards: write the lower port first`);
  }
  return Object.freeze({ from: range.from, to: range.to });
}

function checkUid(uid: number): number {
  if (!Number.isInteger(uid) || uid < 0 || uid > 4294967294) {
    throw usage(`--proxy-uid ${uid} is not a user id: give the numeric uid the proxy runs as, e.g. 2102`);
  }
  return uid;
}

function usage(message: string): MutualError {
  return new MutualError('MUTUAL_CLI_USAGE', message);
}
