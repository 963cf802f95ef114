// The peer-certificate verifier the proxy calls on every mTLS handshake. Never throws for what
// a peer sends: every rejection is a { ok: false, code } value. Hot path: a chain that validated
// before is only re-checked against the clock and the expected identity.
import { createHash } from 'node:crypto';
import { type Clock, systemClock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import { type SpiffeId, tryParseSpiffeId } from '../spiffe/index.ts';
import { checkLeaf, type LeafProfile } from './cert-profile.ts';
import { describeCertificate, OID, type ParsedCertificate, parseCertificate } from './certificate.ts';
import { matchesPeerName, type PeerName } from './peer-name.ts';
import { type VerifyFailure, verifyFailure } from './verify-failure.ts';
import { createTrustAnchors, DEFAULT_MAX_CHAIN_DEPTH, validatePath } from './verify-path.ts';

export type { PeerName } from './peer-name.ts';
export type { VerifyFailure, VerifyReasonCode } from './verify-failure.ts';

export interface PeerVerifierOptions {
  /** DER trust anchors; several at once while roots rotate. */
  readonly anchors: readonly Uint8Array[];
  readonly clock?: Clock;
  /** Clock skew allowed on both ends of every validity window; default 0. */
  readonly skewMs?: number;
  /** Accepted SPIFFE trust domains; any when absent. */
  readonly trustDomains?: readonly string[];
  readonly maxChainDepth?: number;
  /** How many validated chains to remember; default 1024. */
  readonly cacheSize?: number;
}

export type SvidUsage = 'client' | 'server' | 'any';

/**
 * The largest X.509-SVID accepted, DER. Real SVIDs are about 1 KB (a few hundred SANs stay under
 * 16 KB). OpenSSL takes a client certificate up to its 100 KB message cap, but a TLS 1.3 server
 * then cannot fit the session (which holds that certificate) in a ticket of at most 64 KB, and
 * ends the connection with an internal_error alert after the handshake, unlogged and uncounted.
 */
export const MAX_SVID_BYTES = 32 * 1024;

export interface SvidVerifyOptions {
  readonly expectedId?: string;
  readonly atMs?: number;
  /** Which extendedKeyUsage the leaf needs (when it has the extension); default 'any' = both. */
  readonly usage?: SvidUsage;
}

export interface PathVerifyOptions {
  readonly atMs?: number;
  readonly peerName?: PeerName;
  /** extendedKeyUsage OIDs the leaf must carry when it has the extension. */
  readonly requiredEku?: readonly string[];
  /** keyUsage bits the leaf must carry when it has the extension. */
  readonly leafKeyUsage?: readonly string[];
}

export type SvidVerification =
  | {
      readonly ok: true;
      readonly spiffeId: SpiffeId;
      /** leaf … anchor */
      readonly path: readonly ParsedCertificate[];
      /** The earliest notAfter in the path: when this verdict stops holding. */
      readonly validUntilMs: number;
    }
  | VerifyFailure;

export type PathVerification =
  | { readonly ok: true; readonly path: readonly ParsedCertificate[]; readonly validUntilMs: number }
  | VerifyFailure;

export interface PeerVerifier {
  verifySvid(chain: readonly Uint8Array[], options?: SvidVerifyOptions): SvidVerification;
  /**
   * The SVID profile of a leaf whose chain TLS has already validated against these anchors
   * (a TLS server sees only the client's leaf): CA:false, key usage, exactly one SPIFFE ID,
   * trust domain, expected ID and validity window. It does not check the chain.
   */
  verifySvidLeaf(leaf: Uint8Array, options?: SvidVerifyOptions): SvidVerification;
  verifyPath(chain: readonly Uint8Array[], options?: PathVerifyOptions): PathVerification;
}

interface CachedPath {
  readonly path: readonly ParsedCertificate[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

const EKU_FOR_USAGE: Record<SvidUsage, readonly string[]> = {
  client: [OID.clientAuth],
  server: [OID.serverAuth],
  any: [OID.serverAuth, OID.clientAuth],
};

/**
 * Builds a verifier for one set of trust anchors. Throws MUTUAL_PKI_BUNDLE_INVALID when an
 * anchor cannot be decoded (configuration, not peer input). A new anchor set means a new
 * verifier, so cached verdicts never outlive the anchors they were made with.
 */
export function createPeerVerifier(options: PeerVerifierOptions): PeerVerifier {
  if (options.anchors.length === 0) {
    throw new MutualError(
      'MUTUAL_PKI_BUNDLE_INVALID',
      'the trust bundle is empty: no anchor to verify peers against',
    );
  }
  const anchors = createTrustAnchors(
    options.anchors.map((der, index) => {
      try {
        return parseCertificate(der);
      } catch (error) {
        throw new MutualError(
          'MUTUAL_PKI_BUNDLE_INVALID',
          `trust anchor #${index + 1} is not a valid certificate`,
          {
            cause: error,
          },
        );
      }
    }),
  );
  const clock = options.clock ?? systemClock;
  const skewMs = options.skewMs ?? 0;
  const maxChainDepth = options.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH;
  const trustDomains = options.trustDomains === undefined ? undefined : new Set(options.trustDomains);
  const cacheSize = options.cacheSize ?? 1024;
  const cache = new Map<string, CachedPath>();
  // Every mesh connection presents one of a handful of leaves; decoding one with @peculiar/x509
  // costs far more than the handshake's own checks, so decode each distinct DER once.
  const parsed = new Map<string, ParsedCertificate>();
  const parseCached = (der: Uint8Array): ParsedCertificate => {
    const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
    const hit = parsed.get(key);
    if (hit !== undefined) return hit;
    const certificate = parseCertificate(der);
    parsed.set(key, certificate);
    if (parsed.size > cacheSize) parsed.delete(parsed.keys().next().value as string);
    return certificate;
  };

  /** Parses the chain, checks the leaf profile and finds a valid path, from the cache if possible. */
  const validate = (chain: readonly Uint8Array[], atMs: number, profile: LeafProfile) => {
    if (chain.length === 0) return verifyFailure('MUTUAL_PKI_CERT_MALFORMED', 'the peer sent no certificate');
    if (profile === 'svid') {
      const tooLarge = checkSvidSize(chain[0]!);
      if (tooLarge !== undefined) return tooLarge;
    }
    const certs: ParsedCertificate[] = [];
    for (const [index, der] of chain.entries()) {
      try {
        certs.push(parseCached(der));
      } catch (error) {
        const what = index === 0 ? 'the peer certificate' : `chain certificate #${index + 1}`;
        return verifyFailure(
          'MUTUAL_PKI_CERT_MALFORMED',
          `${what} cannot be decoded: ${(error as Error).message}`,
        );
      }
    }
    const leaf = certs[0]!;
    const leafFailure = checkLeaf(leaf, profile);
    if (leafFailure !== undefined) return leafFailure;

    const key = createHash('sha256')
      .update(certs.map((cert) => cert.fingerprintSha256).join(':'))
      .digest('hex');
    const hit = cache.get(key);
    if (hit !== undefined && atMs + skewMs >= hit.notBeforeMs && atMs - skewMs <= hit.notAfterMs) {
      cache.delete(key);
      cache.set(key, hit);
      return { ok: true as const, path: hit.path, validUntilMs: hit.notAfterMs };
    }
    // A miss, or a hit outside its window: validate in full, which also names the expired cert.
    const result = validatePath(leaf, certs.slice(1), anchors, { atMs, skewMs, maxChainDepth });
    if (!result.ok) return result;
    const entry: CachedPath = {
      path: result.path,
      notBeforeMs: Math.max(...result.path.map((cert) => cert.notBeforeMs)),
      notAfterMs: Math.min(...result.path.map((cert) => cert.notAfterMs)),
    };
    cache.set(key, entry);
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value as string);
    return { ok: true as const, path: entry.path, validUntilMs: entry.notAfterMs };
  };

  const guarded = <T>(run: () => T | VerifyFailure): T | VerifyFailure => {
    try {
      return run();
    } catch (error) {
      // Bad input must never crash a handshake; anything that slips through is reported, not thrown.
      return verifyFailure(
        'MUTUAL_PKI_CERT_MALFORMED',
        `the certificate chain could not be checked: ${String(error)}`,
      );
    }
  };

  return {
    verifySvid: (chain, svidOptions = {}) =>
      guarded(() => {
        const validated = validate(chain, svidOptions.atMs ?? clock.now(), 'svid');
        if (!validated.ok) return validated;
        const leaf = validated.path[0]!;
        const usage = checkUsage(leaf, EKU_FOR_USAGE[svidOptions.usage ?? 'any'], ['digitalSignature'], true);
        if (usage !== undefined) return usage;
        const identity = svidIdentity(leaf, trustDomains, svidOptions.expectedId);
        if (!('uri' in identity)) return identity;
        return { ok: true, spiffeId: identity, path: validated.path, validUntilMs: validated.validUntilMs };
      }),
    verifySvidLeaf: (der, svidOptions = {}) =>
      guarded(() => {
        const tooLarge = checkSvidSize(der);
        if (tooLarge !== undefined) return tooLarge;
        const leaf = parseCached(der);
        const leafFailure = checkLeaf(leaf, 'svid');
        if (leafFailure !== undefined) return leafFailure;
        const atMs = svidOptions.atMs ?? clock.now();
        if (atMs + skewMs < leaf.notBeforeMs) {
          return verifyFailure(
            'MUTUAL_PKI_CERT_NOT_YET_VALID',
            `${describeCertificate(leaf)} is not valid yet`,
          );
        }
        if (atMs - skewMs > leaf.notAfterMs) {
          return verifyFailure('MUTUAL_PKI_CERT_EXPIRED', `${describeCertificate(leaf)} has expired`);
        }
        const usage = checkUsage(leaf, EKU_FOR_USAGE[svidOptions.usage ?? 'any'], ['digitalSignature'], true);
        if (usage !== undefined) return usage;
        const identity = svidIdentity(leaf, trustDomains, svidOptions.expectedId);
        if (!('uri' in identity)) return identity;
        return { ok: true, spiffeId: identity, path: [leaf], validUntilMs: leaf.notAfterMs };
      }),
    verifyPath: (chain, pathOptions = {}) =>
      guarded(() => {
        const validated = validate(chain, pathOptions.atMs ?? clock.now(), 'webpki');
        if (!validated.ok) return validated;
        const leaf = validated.path[0]!;
        const usage = checkUsage(leaf, pathOptions.requiredEku ?? [], pathOptions.leafKeyUsage ?? [], false);
        if (usage !== undefined) return usage;
        const peerName = pathOptions.peerName;
        if (peerName !== undefined && !matchesPeerName(leaf, peerName)) {
          return verifyFailure(
            'MUTUAL_PKI_PEER_NAME_MISMATCH',
            `${describeCertificate(leaf)} is not valid for ${peerName.kind} name "${peerName.value}" (its SANs: ${
              [...leaf.dnsNames, ...leaf.ipAddresses].join(', ') || 'none'
            })`,
          );
        }
        return validated;
      }),
  };
}

/** Before decoding: a leaf too large to be an SVID is refused unread. */
function checkSvidSize(der: Uint8Array): VerifyFailure | undefined {
  if (der.byteLength <= MAX_SVID_BYTES) return undefined;
  return verifyFailure(
    'MUTUAL_PKI_NOT_SVID',
    `the peer certificate is ${der.byteLength} bytes; an X.509-SVID may be at most ${MAX_SVID_BYTES}`,
  );
}

function checkUsage(
  leaf: ParsedCertificate,
  requiredEku: readonly string[],
  requiredKeyUsage: readonly string[],
  keyUsageMandatory: boolean,
): VerifyFailure | undefined {
  const who = describeCertificate(leaf);
  if (leaf.keyUsage === undefined && keyUsageMandatory) {
    return verifyFailure(
      'MUTUAL_PKI_KEY_USAGE_INVALID',
      `${who} has no keyUsage extension (an X.509-SVID must)`,
    );
  }
  const missingKeyUsage = requiredKeyUsage.filter((bit) => leaf.keyUsage?.has(bit as never) === false);
  if (missingKeyUsage.length > 0) {
    return verifyFailure(
      'MUTUAL_PKI_KEY_USAGE_INVALID',
      `${who} lacks keyUsage ${missingKeyUsage.join(', ')}`,
    );
  }
  // anyExtendedKeyUsage does not stand in for a named purpose (CA/B 7.1.2.7.10 forbids it in leaves).
  const missingEku = requiredEku.filter(
    (oid) => leaf.extKeyUsage !== undefined && !leaf.extKeyUsage.includes(oid),
  );
  if (missingEku.length > 0) {
    return verifyFailure(
      'MUTUAL_PKI_KEY_USAGE_INVALID',
      `${who} has extendedKeyUsage ${leaf.extKeyUsage?.join(', ') || '(empty)'} but needs ${missingEku.join(', ')}`,
    );
  }
  return undefined;
}

/** The X509-SVID identity rules: exactly one URI SAN, a SPIFFE ID with a path, an accepted trust domain. */
function svidIdentity(
  leaf: ParsedCertificate,
  trustDomains: ReadonlySet<string> | undefined,
  expectedId: string | undefined,
): SpiffeId | VerifyFailure {
  const who = describeCertificate(leaf);
  const [uri, ...others] = leaf.uris;
  if (uri === undefined) return verifyFailure('MUTUAL_PKI_NOT_SVID', `${who} has no URI SAN`);
  if (others.length > 0) {
    return verifyFailure(
      'MUTUAL_PKI_NOT_SVID',
      `${who} has ${leaf.uris.length} URI SANs; an X.509-SVID has exactly one`,
    );
  }
  const id = tryParseSpiffeId(uri);
  if (id === undefined)
    return verifyFailure('MUTUAL_PKI_NOT_SVID', `${who} has URI SAN "${uri}", not a SPIFFE ID`);
  if (id.path === '') {
    return verifyFailure(
      'MUTUAL_PKI_NOT_SVID',
      `${who} has SPIFFE ID "${uri}" without a path (a trust domain ID)`,
    );
  }
  if (trustDomains !== undefined && !trustDomains.has(id.trustDomain)) {
    return verifyFailure(
      'MUTUAL_PKI_TRUST_DOMAIN_REJECTED',
      `${who} is from trust domain "${id.trustDomain}"; accepted: ${[...trustDomains].join(', ') || 'none'}`,
    );
  }
  if (expectedId !== undefined && id.uri !== expectedId) {
    return verifyFailure(
      'MUTUAL_PKI_SPIFFE_ID_MISMATCH',
      `peer is "${id.uri}" but "${expectedId}" was expected`,
    );
  }
  return id;
}
