// The fast X.509-SVID signer. @peculiar/x509 builds each identity's certificate once (about 4 ms
// of ASN.1 in JavaScript); later certificates for that identity copy its TBSCertificate, patch
// the fixed-length fields that change (serial, validity, public key point, SKI) and sign with
// node:crypto, so a renewal costs little more than the signature. The structure is never
// written here: only buildSvidCertificate (issue.ts) defines it.
import { hash as digest, type KeyObject, sign } from 'node:crypto';
import type { CertificateAuthority } from './authority.ts';
import { randomSerialHex } from './authority.ts';
import {
  buildSvidCertificate,
  type IssuedSvid,
  type IssueSvidOptions,
  issuedSvidFrom,
  planSvid,
  type SvidPlan,
} from './issue.ts';
import { signingAlgorithmFor } from './x509-library.ts';

export const DEFAULT_SVID_TEMPLATE_CACHE_SIZE = 1024;

export interface SvidSigner {
  /** Same checks, options and result as issueSvid; the certificate differs only in its values. */
  issue(options: IssueSvidOptions): Promise<IssuedSvid>;
  /** How many identities have a template (bounded by cacheSize). */
  readonly templateCount: number;
  /** Certificates signed from a template, and built by the library (first for an identity, or ineligible). */
  readonly counts: { readonly fromTemplate: number; readonly byLibrary: number };
}

/** One identity's reference TBSCertificate and where its variable fields sit in it. */
interface SvidTemplate {
  readonly tbs: Buffer;
  readonly serialAt: number;
  readonly notBeforeAt: number;
  readonly notAfterAt: number;
  readonly pointAt: number;
  readonly pointLength: number;
  readonly skiAt: number;
  /** The Certificate's signatureAlgorithm TLV, copied as the library encoded it. */
  readonly signatureAlgorithm: Buffer;
}

const SERIAL_BYTES = 16; // randomSerialHex: 16 octets, top bit clear, first octet non-zero
const UTC_TIME_CHARS = 13; // YYMMDDHHMMSSZ, the form RFC 5280 requires for years 1950-2049
const SKI_BYTES = 20; // SHA-1, RFC 5280 §4.2.1.2 method 1

export function createSvidSigner(
  issuer: CertificateAuthority,
  options: { cacheSize?: number } = {},
): SvidSigner {
  const cacheSize = options.cacheSize ?? DEFAULT_SVID_TEMPLATE_CACHE_SIZE;
  if (!Number.isInteger(cacheSize) || cacheSize < 0) {
    throw new RangeError(`cacheSize must be a non-negative integer, got ${cacheSize}`);
  }
  const hash = signingAlgorithmFor(issuer.keys.privateKey).hash.replace('-', '').toLowerCase();
  // A Map iterates in insertion order, so re-inserting on use makes its first key the LRU one.
  const templates = new Map<string, SvidTemplate>();
  const counts = { fromTemplate: 0, byLibrary: 0 };

  async function issue(issueOptions: IssueSvidOptions): Promise<IssuedSvid> {
    const plan = planSvid(issuer, issueOptions);
    const serialNumber = randomSerialHex();
    const curve = plan.keyDescription.curve;
    const isPatchable =
      curve !== undefined && isUtcTimeYear(plan.notBeforeMs) && isUtcTimeYear(plan.notAfterMs);
    const key = isPatchable ? `${curve}\n${plan.id.uri}\n${plan.dnsNames.join('\n')}` : '';
    const template = isPatchable ? templates.get(key) : undefined;
    if (template) {
      templates.delete(key);
      templates.set(key, template);
      const point = ecPoint(issueOptions.publicKey);
      if (point.length === template.pointLength) {
        const der = signFromTemplate(template, plan, serialNumber, point, issuer.keys.privateKey, hash);
        counts.fromTemplate++;
        return issuedSvidFrom(issuer, plan, serialNumber, der);
      }
    }
    // Slow path: the library builds (and signs) the certificate, which then serves as the template.
    const certificate = await buildSvidCertificate(issuer, plan, serialNumber, issueOptions.publicKey);
    const der = new Uint8Array(certificate.rawData);
    counts.byLibrary++;
    if (isPatchable && cacheSize > 0) {
      const made = templateFrom(der, serialNumber, ecPoint(issueOptions.publicKey));
      if (made) {
        templates.delete(key);
        templates.set(key, made);
        if (templates.size > cacheSize) templates.delete(templates.keys().next().value!);
      }
    }
    return issuedSvidFrom(issuer, plan, serialNumber, der);
  }

  return {
    issue,
    get templateCount() {
      return templates.size;
    },
    get counts() {
      return { ...counts };
    },
  };
}

function signFromTemplate(
  template: SvidTemplate,
  plan: SvidPlan,
  serialNumber: string,
  point: Buffer,
  signingKey: KeyObject,
  hash: string,
): Buffer {
  const tbs = Buffer.from(template.tbs);
  tbs.write(serialNumber, template.serialAt, SERIAL_BYTES, 'hex');
  tbs.write(utcTime(plan.notBeforeMs), template.notBeforeAt, UTC_TIME_CHARS, 'latin1');
  tbs.write(utcTime(plan.notAfterMs), template.notAfterAt, UTC_TIME_CHARS, 'latin1');
  point.copy(tbs, template.pointAt);
  digest('sha1', point, 'buffer').copy(tbs, template.skiAt);
  const signature = sign(hash, tbs, signingKey); // DER ECDSA-Sig-Value (or PKCS#1 v1.5 for RSA)
  return certificateDer(tbs, template.signatureAlgorithm, signature);
}

/**
 * Finds the variable fields in a certificate the library built, by their values: each must occur
 * exactly once and in TBSCertificate order. Returns undefined (no fast path) if anything is off.
 */
function templateFrom(
  certificateDer: Uint8Array,
  serialNumber: string,
  point: Buffer,
): SvidTemplate | undefined {
  const certificate = Buffer.from(certificateDer);
  const outer = readTlv(certificate, 0);
  const tbsTlv = readTlv(certificate, outer.contentAt);
  const algorithmTlv = readTlv(certificate, tbsTlv.end);
  const tbs = certificate.subarray(outer.contentAt, tbsTlv.end);
  const serial = Buffer.concat([Buffer.of(0x02, SERIAL_BYTES), Buffer.from(serialNumber, 'hex')]);
  const ski = Buffer.concat([Buffer.of(0x04, SKI_BYTES), digest('sha1', point, 'buffer')]);
  const validity = findValidity(tbs);
  const serialAt = findOnce(tbs, serial);
  const pointAt = findOnce(tbs, point);
  const skiAt = findOnce(tbs, ski);
  if (validity === undefined || serialAt < 0 || pointAt < 0 || skiAt < 0) return undefined;
  if (!(serialAt < validity && validity < pointAt && pointAt < skiAt)) return undefined;
  return {
    tbs: Buffer.from(tbs),
    serialAt: serialAt + 2,
    notBeforeAt: validity + 4,
    notAfterAt: validity + 6 + UTC_TIME_CHARS,
    pointAt,
    pointLength: point.length,
    skiAt: skiAt + 2,
    signatureAlgorithm: Buffer.from(certificate.subarray(tbsTlv.end, algorithmTlv.end)),
  };
}

/** Offset of Validity ::= SEQUENCE { UTCTime, UTCTime }, found by its shape; undefined unless unique. */
function findValidity(tbs: Buffer): number | undefined {
  const head = Buffer.of(0x30, 2 * (2 + UTC_TIME_CHARS), 0x17, UTC_TIME_CHARS);
  const at = tbs.indexOf(head);
  if (at < 0 || tbs.indexOf(head, at + 1) >= 0 || tbs[at + 4 + UTC_TIME_CHARS] !== 0x17) return undefined;
  return at;
}

function findOnce(haystack: Buffer, needle: Buffer): number {
  const at = haystack.indexOf(needle);
  return at >= 0 && haystack.indexOf(needle, at + 1) < 0 ? at : -1;
}

/**
 * The EC point (0x04 || x || y), as the subjectPublicKey BIT STRING holds it. This export is the
 * one costly step left (about 18 µs, OpenSSL 3's export; SPKI DER would cost about 50 µs).
 */
function ecPoint(key: KeyObject): Buffer {
  return key.export({ format: 'raw-public' });
}

function isUtcTimeYear(ms: number): boolean {
  const year = new Date(ms).getUTCFullYear();
  return year >= 1950 && year <= 2049;
}

/** UTCTime text, as asn1js writes it: YYMMDDHHMMSSZ (the caller has checked 1950 <= year <= 2049). */
function utcTime(ms: number): string {
  const date = new Date(ms);
  const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);
  return `${two(date.getUTCFullYear() % 100)}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
}

// The only DER this file writes: the outer Certificate SEQUENCE and the signature BIT STRING,
// whose lengths change with the length of the ECDSA signature (70-72 bytes for P-256). Definite
// lengths: short form below 128, else 0x81/0x82 and one or two length octets.
function certificateDer(tbs: Buffer, signatureAlgorithm: Buffer, signature: Buffer): Buffer {
  const bitString = derHeader(0x03, 1 + signature.length);
  const length = tbs.length + signatureAlgorithm.length + bitString.length + 1 + signature.length;
  const sequence = derHeader(0x30, length);
  return Buffer.concat(
    [sequence, tbs, signatureAlgorithm, bitString, NO_UNUSED_BITS, signature],
    sequence.length + length,
  );
}

const NO_UNUSED_BITS = Buffer.of(0);

function derHeader(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.of(tag, length);
  if (length < 0x100) return Buffer.of(tag, 0x81, length);
  return Buffer.of(tag, 0x82, length >> 8, length & 0xff);
}

/** Reads one TLV header (as the library wrote it: definite length, one-byte tag). */
function readTlv(der: Buffer, at: number): { contentAt: number; end: number } {
  const first = der[at + 1] ?? 0;
  const octets = first & 0x80 ? first & 0x7f : 0;
  let length = octets ? 0 : first;
  for (let i = 0; i < octets; i++) length = length * 256 + (der[at + 2 + i] ?? 0);
  const contentAt = at + 2 + octets;
  return { contentAt, end: contentAt + length };
}
