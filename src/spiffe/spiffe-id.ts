import { MutualError } from '../errors.ts';

/** A SPIFFE ID that passed every rule of the SPIFFE-ID specification. */
export interface SpiffeId {
  /** The whole ID, e.g. `spiffe://cluster.local/ns/web/sa/default`. */
  readonly uri: string;
  readonly trustDomain: string;
  /** The path with its leading slash, or '' for the trust domain's own ID. */
  readonly path: string;
}

/** The rule a rejected SPIFFE ID or trust domain broke; stable, shown to users and in `detail.rule`. */
export type SpiffeRule =
  | 'empty'
  | 'scheme'
  | 'scheme-lowercase'
  | 'too-long'
  | 'trust-domain-missing'
  | 'trust-domain-too-long'
  | 'trust-domain-lowercase'
  | 'trust-domain-chars'
  | 'userinfo'
  | 'port'
  | 'query'
  | 'fragment'
  | 'percent-encoding'
  | 'path-empty-segment'
  | 'path-dot-segment'
  | 'path-trailing-slash'
  | 'path-chars';

/** The spec requires support up to 2048 bytes for an ID and 255 for a trust domain; longer is refused. */
export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const SCHEME_PREFIX = 'spiffe://';
const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_SEGMENT = /^[a-zA-Z0-9._-]+$/;

const ruleText: Record<SpiffeRule, string> = {
  empty: 'it is empty',
  scheme: 'the scheme must be "spiffe://"',
  'scheme-lowercase': 'the scheme must be written in lower case ("spiffe://")',
  'too-long': `it is longer than ${MAX_SPIFFE_ID_BYTES} bytes`,
  'trust-domain-missing': 'the trust domain is missing',
  'trust-domain-too-long': `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`,
  'trust-domain-lowercase': 'the trust domain must be lower case',
  'trust-domain-chars': 'the trust domain may contain only a-z, 0-9, ".", "-" and "_"',
  userinfo: 'user info ("user@") is not allowed',
  port: 'a port (":port") is not allowed',
  query: 'a query ("?...") is not allowed',
  fragment: 'a fragment ("#...") is not allowed',
  'percent-encoding': 'percent-encoding ("%xx") is not allowed',
  'path-empty-segment': 'the path has an empty segment ("//")',
  'path-dot-segment': 'the path has a "." or ".." segment',
  'path-trailing-slash': 'the path ends with "/"',
  'path-chars': 'path segments may contain only a-z, A-Z, 0-9, ".", "-" and "_"',
};

function reject(
  code: 'MUTUAL_SPIFFE_ID_INVALID' | 'MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID',
  input: string,
  rule: SpiffeRule,
): never {
  const what = code === 'MUTUAL_SPIFFE_ID_INVALID' ? 'SPIFFE ID' : 'trust domain';
  const shown = input.length > 120 ? `${input.slice(0, 117)}...` : input;
  throw new MutualError(code, `invalid ${what} ${JSON.stringify(shown)}: ${ruleText[rule]}`, {
    detail: { rule },
  });
}

/** Which rule a character outside the allowed sets breaks, so errors name the real mistake. */
function ruleForForeignChar(char: string): SpiffeRule | undefined {
  switch (char) {
    case '@':
      return 'userinfo';
    case ':':
      return 'port';
    case '?':
      return 'query';
    case '#':
      return 'fragment';
    case '%':
      return 'percent-encoding';
    default:
      return undefined;
  }
}

function trustDomainRule(name: string): SpiffeRule | undefined {
  if (name.length === 0) return 'trust-domain-missing';
  if (name.length > MAX_TRUST_DOMAIN_LENGTH) return 'trust-domain-too-long';
  for (const char of name) {
    if (TRUST_DOMAIN_CHAR.test(char)) continue;
    const special = ruleForForeignChar(char);
    if (special) return special;
    if (char !== char.toLowerCase() && TRUST_DOMAIN_CHAR.test(char.toLowerCase())) {
      return 'trust-domain-lowercase';
    }
    return 'trust-domain-chars';
  }
  return undefined;
}

function pathRule(path: string): SpiffeRule | undefined {
  if (path === '') return undefined;
  for (const char of path) {
    const special = ruleForForeignChar(char);
    if (special && special !== 'userinfo' && special !== 'port') return special;
  }
  if (path.endsWith('/')) return 'path-trailing-slash';
  // path starts with '/', so the first split element is always ''.
  for (const segment of path.split('/').slice(1)) {
    if (segment === '') return 'path-empty-segment';
    if (segment === '.' || segment === '..') return 'path-dot-segment';
    if (!PATH_SEGMENT.test(segment)) return 'path-chars';
  }
  return undefined;
}

/**
 * Parses a SPIFFE ID, or throws MUTUAL_SPIFFE_ID_INVALID naming the broken rule in the message
 * and in `detail.rule`.
 */
export function parseSpiffeId(input: string): SpiffeId {
  const code = 'MUTUAL_SPIFFE_ID_INVALID';
  if (input.length === 0) reject(code, input, 'empty');
  if (Buffer.byteLength(input, 'utf8') > MAX_SPIFFE_ID_BYTES) reject(code, input, 'too-long');
  if (!input.startsWith(SCHEME_PREFIX)) {
    reject(code, input, input.toLowerCase().startsWith(SCHEME_PREFIX) ? 'scheme-lowercase' : 'scheme');
  }
  const rest = input.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const domainRule = trustDomainRule(trustDomain);
  if (domainRule) reject(code, input, domainRule);
  const brokenPathRule = pathRule(path);
  if (brokenPathRule) reject(code, input, brokenPathRule);
  return Object.freeze({ uri: input, trustDomain, path });
}

/** Like parseSpiffeId, but returns undefined instead of throwing; for hot paths that count rejections. */
export function tryParseSpiffeId(input: string): SpiffeId | undefined {
  try {
    return parseSpiffeId(input);
  } catch {
    return undefined;
  }
}

/**
 * Parses a trust domain name. `spiffe://cluster.local` is accepted as a spelling of
 * `cluster.local`, since users copy it from IDs; anything with a path is refused.
 */
export function parseTrustDomain(input: string): string {
  const code = 'MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID';
  let name = input;
  if (input.toLowerCase().startsWith(SCHEME_PREFIX)) {
    const id = parseSpiffeId(input);
    if (id.path !== '') {
      throw new MutualError(
        code,
        `invalid trust domain ${JSON.stringify(input)}: it is a SPIFFE ID with a path; give only the trust domain, e.g. ${JSON.stringify(id.trustDomain)}`,
        { detail: { rule: 'path' } },
      );
    }
    name = id.trustDomain;
  }
  if (name.length === 0) reject(code, input, 'trust-domain-missing');
  const rule = trustDomainRule(name);
  if (rule) reject(code, input, rule);
  return name;
}

/** The trust domain's own SPIFFE ID (`spiffe://<td>`), as used in bundles and name constraints. */
export function trustDomainId(trustDomain: string): SpiffeId {
  return parseSpiffeId(`${SCHEME_PREFIX}${parseTrustDomain(trustDomain)}`);
}

/** Builds a SPIFFE ID from a trust domain and path segments, validating the result. */
export function formatSpiffeId(trustDomain: string, ...segments: string[]): SpiffeId {
  const domain = parseTrustDomain(trustDomain);
  for (const segment of segments) {
    // A "/" inside a segment would silently change the ID's shape (e.g. ns/a/b/sa/web).
    if (segment.includes('/')) reject('MUTUAL_SPIFFE_ID_INVALID', segment, 'path-chars');
  }
  const path = segments.map((segment) => `/${segment}`).join('');
  return parseSpiffeId(`${SCHEME_PREFIX}${domain}${path}`);
}

/** Whether `segment` may be one path segment of a SPIFFE ID (e.g. a namespace or service account). */
export function isValidPathSegment(segment: string): boolean {
  return segment !== '.' && segment !== '..' && PATH_SEGMENT.test(segment);
}
