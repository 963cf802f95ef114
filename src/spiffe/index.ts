// SPIFFE IDs and trust domains: parse, validate and format exactly as the SPIFFE-ID spec says.
// Pure: no I/O, no clock. Every rejection names the rule that was broken.

export { type MeshIdentity, meshIdentity, meshIdentityOf, parseMeshIdentity } from './mesh-identity.ts';
export {
  formatSpiffeId,
  isValidPathSegment,
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_LENGTH,
  parseSpiffeId,
  parseTrustDomain,
  type SpiffeId,
  type SpiffeRule,
  trustDomainId,
  tryParseSpiffeId,
} from './spiffe-id.ts';
