// Does a certificate carry the DNS name or IP address a client dialled? RFC 6125 matching on
// subjectAltName only (the subject CN is never used), with at most one wildcard that must be
// the whole left-most label, as the CA/Browser Forum allows.
import { isIP } from 'node:net';
import type { ParsedCertificate } from './certificate.ts';

export type PeerName = { readonly kind: 'DNS' | 'IP'; readonly value: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A lower-case, ASCII, dot-separated host name of valid labels (no wildcard, no trailing dot). */
export function isHostname(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => LABEL.test(label));
}

/** 4 or 16 bytes for an IP address literal, or undefined. */
export function parseIpAddress(text: string): Uint8Array | undefined {
  const family = isIP(text);
  if (family === 4) return Uint8Array.from(text.split('.').map(Number));
  if (family !== 6 || text.includes('.') || text.includes('%')) return undefined;
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    const value = Number.parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  });
  return bytes;
}

/** Whether the certificate's SANs include `peerName`. */
export function matchesPeerName(cert: ParsedCertificate, peerName: PeerName): boolean {
  if (peerName.kind === 'IP') {
    const wanted = parseIpAddress(peerName.value);
    if (wanted === undefined) return false;
    return cert.subjectAltNames.some(
      (name) => name.type === 'ip' && Buffer.from(name.bytes).equals(Buffer.from(wanted)),
    );
  }
  const reference = peerName.value.toLowerCase().replace(/\.$/, '');
  if (!isHostname(reference)) return false;
  return cert.dnsNames.some((presented) => matchesDnsName(presented.toLowerCase(), reference));
}

function matchesDnsName(presented: string, reference: string): boolean {
  if (!presented.startsWith('*.')) return isHostname(presented) && presented === reference;
  const base = presented.slice(2);
  // A wildcard directly over a TLD ("*.com") would cover a whole public suffix; refuse it.
  if (!isHostname(base) || !base.includes('.')) return false;
  const dot = reference.indexOf('.');
  return dot > 0 && reference.slice(dot + 1) === base;
}
