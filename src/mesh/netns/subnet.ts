// Choosing a /24 for a mesh inside 198.18.0.0/15 (RFC 2544 benchmarking space) that no route or
// address of this machine already covers, starting at a place derived from the mesh id so two
// meshes rarely even try the same one. Pure, but for the inputs read from `ip`.

const BASE = ipv4ToNumber('198.18.0.0');
/** 198.18.0.0/15 holds 512 /24s. */
export const SUBNET_COUNT = 512;

export interface MeshSubnet {
  /** 0 … 511: 198.18.0.0/24 … 198.19.255.0/24. */
  readonly index: number;
  readonly cidr: string;
  /** The host's end of the mesh network: .1 */
  readonly hostAddress: string;
  readonly prefixLength: 24;
}

export function meshSubnet(index: number): MeshSubnet {
  if (!Number.isInteger(index) || index < 0 || index >= SUBNET_COUNT) {
    throw new RangeError(`subnet index ${index} is outside 0…${SUBNET_COUNT - 1}`);
  }
  const network = BASE + index * 256;
  return {
    index,
    cidr: `${numberToIpv4(network)}/24`,
    hostAddress: numberToIpv4(network + 1),
    prefixLength: 24,
  };
}

/** The n-th pod's address in a subnet: .2, .3, … .254 (.1 is the host). */
export function podAddress(subnet: MeshSubnet, podIndex: number): string {
  if (podIndex < 0 || podIndex > 252) throw new RangeError(`a mesh network holds at most 253 pods`);
  return numberToIpv4(ipv4ToNumber(subnet.hostAddress) + 1 + podIndex);
}

/**
 * The subnets to try, best first: from `startIndex` on, skipping every /24 that one of `inUse`
 * (CIDRs or addresses with a prefix, as `ip -4 addr` and `ip -4 route` print them) overlaps.
 */
export function candidateSubnets(startIndex: number, inUse: readonly string[]): MeshSubnet[] {
  const ranges = inUse.map(cidrRange).filter((range) => range !== undefined);
  const free: MeshSubnet[] = [];
  for (let step = 0; step < SUBNET_COUNT; step++) {
    const index = (startIndex + step) % SUBNET_COUNT;
    const start = BASE + index * 256;
    const end = start + 255;
    if (!ranges.some(([from, to]) => from <= end && to >= start)) free.push(meshSubnet(index));
  }
  return free;
}

/** True when `cidr` (an address with a prefix, e.g. 198.18.7.1/24) overlaps `subnet`. */
export function overlaps(cidr: string, subnet: MeshSubnet): boolean {
  const range = cidrRange(cidr);
  const start = BASE + subnet.index * 256;
  return range !== undefined && range[0] <= start + 255 && range[1] >= start;
}

/** Every IPv4 CIDR-looking word in `ip` output (`default` and the like are left out). */
export function cidrsIn(text: string): string[] {
  return text.match(/\b\d{1,3}(?:\.\d{1,3}){3}(?:\/\d{1,2})?\b/g) ?? [];
}

function cidrRange(cidr: string): [number, number] | undefined {
  const [address, prefixText] = cidr.split('/');
  const prefix = prefixText === undefined ? 32 : Number(prefixText);
  const value = ipv4ToNumber(address ?? '');
  if (Number.isNaN(value) || !(prefix >= 0 && prefix <= 32)) return undefined;
  const size = 2 ** (32 - prefix);
  const start = Math.floor(value / size) * size;
  return [start, start + size - 1];
}

function ipv4ToNumber(address: string): number {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((part) => !(Number.isInteger(part) && part >= 0 && part <= 255)))
    return Number.NaN;
  return ((parts[0]! * 256 + parts[1]!) * 256 + parts[2]!) * 256 + parts[3]!;
}

function numberToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}
