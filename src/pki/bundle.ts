import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { MutualError } from '../errors.ts';
import { parseTrustDomain } from '../spiffe/index.ts';
import { decodePemOfType, encodePem } from './pem.ts';

/**
 * The roots a workload trusts. Several at once, so an anchor can be rotated: publish the new root
 * beside the old one, switch the issuer, then drop the old root.
 */
export interface TrustBundle {
  readonly trustDomain: string;
  /** DER of each root, in the order given; duplicates removed. */
  readonly rootsDer: readonly Buffer[];
  /** SPIFFE `spiffe_sequence`: grows with every change. */
  readonly sequence: number;
}

/** The SPIFFE bundle refresh hint we publish: poll every 5 minutes. */
export const BUNDLE_REFRESH_HINT_S = 300;
const MAX_BUNDLE_ROOTS = 64;

export function createTrustBundle(
  trustDomain: string,
  rootsDer: readonly Uint8Array[],
  sequence = 1,
): TrustBundle {
  const domain = trustDomain === '' ? '' : parseTrustDomain(trustDomain);
  const unique: Buffer[] = [];
  for (const [index, der] of rootsDer.entries()) {
    const buffer = Buffer.from(der);
    checkRoot(buffer, `root #${index + 1}`);
    if (!unique.some((known) => known.equals(buffer))) unique.push(buffer);
  }
  if (unique.length === 0) {
    throw bundleInvalid('the trust bundle holds no root certificate; add at least one trust anchor');
  }
  if (unique.length > MAX_BUNDLE_ROOTS) {
    throw bundleInvalid(
      `the trust bundle holds ${unique.length} roots; at most ${MAX_BUNDLE_ROOTS} are accepted`,
    );
  }
  return Object.freeze({ trustDomain: domain, rootsDer: Object.freeze(unique), sequence });
}

function checkRoot(der: Buffer, what: string): void {
  let certificate: NodeX509Certificate;
  try {
    certificate = new NodeX509Certificate(der);
  } catch (error) {
    throw new MutualError(
      'MUTUAL_PKI_BUNDLE_INVALID',
      `trust bundle ${what} is not a decodable certificate`,
      {
        cause: error,
      },
    );
  }
  // Node lists the subject's attributes one a line; messages name it on one, as everywhere else.
  const subject = certificate.subject ? `(${certificate.subject.split('\n').join(', ')})` : '(empty subject)';
  if (!certificate.ca) {
    throw bundleInvalid(`trust bundle ${what} ${subject} is not a CA certificate; a bundle holds only roots`);
  }
  // An intermediate as an anchor would make OpenSSL-based peers and ours disagree on what is trusted.
  if (!certificate.checkIssued(certificate) || !certificate.verify(certificate.publicKey)) {
    throw bundleInvalid(
      `trust bundle ${what} ${subject} is not self-signed; a bundle holds roots, not intermediates`,
    );
  }
}

function bundleInvalid(message: string): MutualError {
  return new MutualError('MUTUAL_PKI_BUNDLE_INVALID', message);
}

export function parseBundlePem(text: string, trustDomain = '', source = 'trust bundle'): TrustBundle {
  const blocks = decodePemOfType(text, ['CERTIFICATE'], source);
  return createTrustBundle(
    trustDomain,
    blocks.map((block) => block.der),
  );
}

/** Every root as PEM, each ending with a newline, so the text can be handed to any TLS stack. */
export function bundleToPem(bundle: TrustBundle): string {
  return bundle.rootsDer.map((der) => encodePem('CERTIFICATE', der)).join('');
}

/** SPIFFE bundle format (RFC 7517 JWK Set): one JWK per root, `use: x509-svid`, `x5c` of one DER. */
export interface SpiffeBundleJwks {
  keys: Array<Record<string, unknown>>;
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

export function bundleToJwks(bundle: TrustBundle): SpiffeBundleJwks {
  const keys = bundle.rootsDer.map((der) => {
    const certificate = new NodeX509Certificate(der);
    const jwk = certificate.publicKey.export({ format: 'jwk' });
    // The SPIFFE bundle spec forbids `kid` on x509-svid keys.
    return { ...jwk, use: 'x509-svid', x5c: [der.toString('base64')] };
  });
  return { keys, spiffe_sequence: bundle.sequence, spiffe_refresh_hint: BUNDLE_REFRESH_HINT_S };
}

/**
 * Reads a SPIFFE bundle document. Per the spec, entries with another `use` are skipped and only
 * `x5c[0]` counts; an entry whose key does not match its certificate is refused.
 */
export function parseBundleJwks(text: string, trustDomain = '', source = 'trust bundle'): TrustBundle {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw bundleInvalid(`${source}: not valid JSON (${(error as Error).message})`);
  }
  if (
    typeof document !== 'object' ||
    document === null ||
    !Array.isArray((document as SpiffeBundleJwks).keys)
  ) {
    throw bundleInvalid(`${source}: a SPIFFE bundle is a JSON object with a "keys" array`);
  }
  const jwks = document as SpiffeBundleJwks;
  const roots: Buffer[] = [];
  for (const [index, key] of jwks.keys.entries()) {
    if (typeof key !== 'object' || key === null || key.use !== 'x509-svid') continue;
    const x5c = key.x5c;
    if (!Array.isArray(x5c) || typeof x5c[0] !== 'string') {
      throw bundleInvalid(`${source}: key #${index + 1} has use x509-svid but no x5c certificate`);
    }
    const der = Buffer.from(x5c[0], 'base64');
    checkRoot(der, `key #${index + 1}`);
    const certificateJwk = new NodeX509Certificate(der).publicKey.export({ format: 'jwk' });
    const fields =
      certificateJwk.kty === 'RSA' ? (['kty', 'n', 'e'] as const) : (['kty', 'crv', 'x', 'y'] as const);
    for (const field of fields) {
      if (key[field] !== certificateJwk[field]) {
        throw bundleInvalid(
          `${source}: key #${index + 1} does not match its x5c certificate (field ${field})`,
        );
      }
    }
    roots.push(der);
  }
  const sequence = jwks.spiffe_sequence ?? 1;
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw bundleInvalid(
      `${source}: spiffe_sequence must be a non-negative integer, got ${JSON.stringify(sequence)}`,
    );
  }
  return createTrustBundle(trustDomain, roots, sequence);
}

/** Reads a bundle in either format: PEM, or a SPIFFE JWKS document (starts with `{`). */
export function parseBundle(text: string, trustDomain = '', source = 'trust bundle'): TrustBundle {
  return text.trimStart().startsWith('{')
    ? parseBundleJwks(text, trustDomain, source)
    : parseBundlePem(text, trustDomain, source);
}
