// RFC 5280 §4.2.1.10 name constraints over a whole path. Each CA's constraints bind every
// certificate below it (so constraints of several CAs intersect), except self-issued
// intermediates. Forms we cannot evaluate (directoryName, otherName, …) fail closed.
import { describeCertificate, type GeneralNameEntry, type ParsedCertificate } from './certificate.ts';
import { isHostname } from './peer-name.ts';
import { type VerifyFailure, verifyFailure } from './verify-failure.ts';

type CheckedType = 'dns' | 'uri' | 'email' | 'ip';

/** Checks every name in `path` (leaf first, anchor last) against the constraints above it. */
export function checkNameConstraints(path: readonly ParsedCertificate[]): VerifyFailure | undefined {
  for (let ca = 1; ca < path.length; ca++) {
    const constraints = path[ca]?.nameConstraints;
    if (constraints === undefined) continue;
    const constrainer = describeCertificate(path[ca]!);
    const malformed = findMalformedConstraint(constraints.permitted ?? [], constraints.excluded ?? []);
    if (malformed !== undefined) {
      return verifyFailure(
        'MUTUAL_PKI_CHAIN_INVALID',
        `${constrainer} has a malformed name constraint: ${malformed}`,
      );
    }
    for (let below = 0; below < ca; below++) {
      const cert = path[below]!;
      if (below > 0 && cert.isSelfIssued) continue;
      const violation = findViolation(cert, constraints.permitted, constraints.excluded ?? []);
      if (violation !== undefined) {
        return verifyFailure(
          'MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED',
          `${describeCertificate(cert)}: ${violation}, outside the name constraints of ${constrainer}`,
        );
      }
    }
  }
  return undefined;
}

function findMalformedConstraint(
  permitted: readonly GeneralNameEntry[],
  excluded: readonly GeneralNameEntry[],
): string | undefined {
  for (const subtree of [...permitted, ...excluded]) {
    if (subtree.type === 'dns' || subtree.type === 'uri') {
      const host = subtree.value.toLowerCase().replace(/^\./, '');
      if (subtree.value !== '' && !isHostname(host)) return `${subtree.type} "${subtree.value}"`;
    } else if (subtree.type === 'ip' && !isValidIpSubtree(subtree.bytes)) {
      return `IP subtree of ${subtree.bytes.length} bytes is not an address and contiguous mask`;
    }
  }
  return undefined;
}

function findViolation(
  cert: ParsedCertificate,
  permitted: readonly GeneralNameEntry[] | undefined,
  excluded: readonly GeneralNameEntry[],
): string | undefined {
  const constraintTypes = new Set([...(permitted ?? []), ...excluded].map((subtree) => subtree.type));
  if (constraintTypes.has('directoryName')) {
    return 'the CA uses directoryName constraints, which Mutual does not evaluate';
  }
  for (const name of cert.subjectAltNames) {
    if (name.type === 'other' || name.type === 'directoryName') {
      if (constraintTypes.has(name.type)) return `its ${name.type} SAN cannot be checked against constraints`;
      continue;
    }
    const type: CheckedType = name.type;
    if (!constraintTypes.has(type)) continue;
    const shown = type === 'ip' ? 'IP address SAN' : `${type} SAN "${name.value}"`;
    if (!isWellFormed(name)) return `malformed ${shown}`;
    if (excluded.some((subtree) => subtree.type === type && covers(subtree, name, 'excluded'))) {
      return `${shown} is excluded`;
    }
    const allowed = (permitted ?? []).filter((subtree) => subtree.type === type);
    if (allowed.length > 0 && !allowed.some((subtree) => covers(subtree, name, 'permitted'))) {
      return `${shown} is not permitted`;
    }
  }
  return undefined;
}

function isWellFormed(name: GeneralNameEntry): boolean {
  switch (name.type) {
    case 'dns': {
      const host = name.value.toLowerCase();
      return isHostname(host.startsWith('*.') ? host.slice(2) : host);
    }
    case 'uri':
      return uriHost(name.value) !== undefined;
    case 'email':
      return /^[^@\s]+@[^@\s]+$/.test(name.value);
    case 'ip':
      return name.bytes.length === 4 || name.bytes.length === 16;
    default:
      return false;
  }
}

/** Whether a subtree covers a name; for excluded subtrees a wildcard counts if it could match one. */
function covers(subtree: GeneralNameEntry, name: GeneralNameEntry, mode: 'permitted' | 'excluded'): boolean {
  const constraint = subtree.value.toLowerCase();
  switch (name.type) {
    case 'dns': {
      const host = name.value.toLowerCase();
      if (dnsWithin(host, constraint)) return true;
      if (mode === 'excluded' && host.startsWith('*.')) {
        // "*.example.com" can stand for "foo.example.com", so an excluded "foo.example.com" hits it.
        const label = constraint.replace(/^\./, '').split('.');
        return label.length > 1 && label.slice(1).join('.') === host.slice(2);
      }
      return false;
    }
    case 'uri': {
      const host = uriHost(name.value) ?? '';
      return constraint.startsWith('.') ? host.endsWith(constraint) : host === constraint;
    }
    case 'email': {
      const at = name.value.lastIndexOf('@');
      const domain = name.value.slice(at + 1).toLowerCase();
      if (constraint.includes('@')) return name.value.toLowerCase() === constraint;
      return constraint.startsWith('.') ? domain.endsWith(constraint) : domain === constraint;
    }
    case 'ip':
      return ipWithin(name.bytes, subtree.bytes);
    default:
      return false;
  }
}

/** DNS subtrees: "example.com" covers itself and every subdomain; ".example.com" only subdomains. */
function dnsWithin(host: string, constraint: string): boolean {
  if (constraint === '') return true;
  if (constraint.startsWith('.')) return host.endsWith(constraint);
  return host === constraint || host.endsWith(`.${constraint}`);
}

/** The lower-cased host of a URI with an authority ("spiffe://td/path" → "td"), else undefined. */
function uriHost(uri: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(uri);
  if (match === null) return undefined;
  const authority = match[1]!.slice(match[1]!.lastIndexOf('@') + 1).replace(/:\d*$/, '');
  const host = authority.toLowerCase();
  return isHostname(host) ? host : undefined;
}

function isValidIpSubtree(bytes: Uint8Array): boolean {
  if (bytes.length !== 8 && bytes.length !== 32) return false;
  const mask = bytes.subarray(bytes.length / 2);
  let bits = '';
  for (const byte of mask) bits += byte.toString(2).padStart(8, '0');
  return /^1*0*$/.test(bits);
}

function ipWithin(address: Uint8Array, subtree: Uint8Array): boolean {
  if (subtree.length !== address.length * 2) return false;
  for (let i = 0; i < address.length; i++) {
    const mask = subtree[address.length + i]!;
    if ((address[i]! & mask) !== (subtree[i]! & mask)) return false;
  }
  return true;
}
