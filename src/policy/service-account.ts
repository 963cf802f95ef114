// Istio's `serviceAccounts` / `notServiceAccounts` (and the `source.serviceAccount` condition):
// `<namespace>/<name>`, or `<name>` for the policy's own namespace, matched against the peer's
// SPIFFE ID as Istio's RBAC generator does (pilot/pkg/security/authz/model/generator.go,
// serviceAccountRegex): `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, the values taken literally.
// The trust domain is not compared (Istio's sidecars and ztunnel alike); which trust domains
// reach policy at all is decided by the trust bundle. Compiled once; a request costs a few
// indexOf calls, no regex.

/** Istio's limits (pkg/config/security CheckServiceAccount). */
export const MAX_SERVICE_ACCOUNTS = 16;
export const MAX_SERVICE_ACCOUNT_LENGTH = 320;

/** Why a `serviceAccounts` value is one Istio refuses, or undefined if it is fine. */
export function serviceAccountProblem(value: string): string | undefined {
  if (value.includes('*')) {
    return `"${value}" has a "*": service accounts take no wildcards`;
  }
  const slashes = value.split('/').length - 1;
  if (slashes > 1) {
    return `"${value}" is not <namespace>/<service-account> or <service-account>: it has ${slashes} "/"`;
  }
  if (value.length > MAX_SERVICE_ACCOUNT_LENGTH) {
    return `"${value.slice(0, 40)}…" is ${value.length} characters long; at most ${MAX_SERVICE_ACCOUNT_LENGTH} are allowed`;
  }
  const [namespace, name] = value.split('/');
  if (slashes === 1 && namespace === '') return `"${value}" has an empty namespace`;
  if (slashes === 1 && name === '') return `"${value}" has an empty service account`;
  return undefined;
}

/** One `(namespace, service account)` pair as the two needles searched for in a principal. */
export interface ServiceAccountPatterns {
  /** `/ns/<namespace>/`, one per value. */
  readonly namespaces: readonly string[];
  /** `sa/<name>`, one per value (same index). */
  readonly accounts: readonly string[];
}

/** `values` (validated) with a bare `<name>` read as `<defaultNamespace>/<name>`, as Istio does. */
export function compileServiceAccounts(
  values: readonly string[],
  defaultNamespace: string,
): ServiceAccountPatterns {
  const namespaces: string[] = [];
  const accounts: string[] = [];
  for (const value of values) {
    const slash = value.indexOf('/');
    namespaces.push(`/ns/${slash < 0 ? defaultNamespace : value.slice(0, slash)}/`);
    accounts.push(`sa/${slash < 0 ? value : value.slice(slash + 1)}`);
  }
  return { namespaces, accounts };
}

/** Does the principal (without `spiffe://`) match any of the service accounts? */
export function matchesServiceAccount(patterns: ServiceAccountPatterns, principal: string): boolean {
  const { namespaces, accounts } = patterns;
  for (let i = 0; i < namespaces.length; i++) {
    if (matchesOne(principal, namespaces[i]!, accounts[i]!)) return true;
  }
  return false;
}

/** `^.+<ns>(.+/|)<sa>(/.+)?$` with `ns` = `/ns/X/` and `sa` = `sa/Y`, by hand. */
function matchesOne(principal: string, ns: string, sa: string): boolean {
  // `.+` before `/ns/`: at least one character.
  for (let at = principal.indexOf(ns, 1); at >= 1; at = principal.indexOf(ns, at + 1)) {
    const rest = at + ns.length;
    for (let found = principal.indexOf(sa, rest); found >= 0; found = principal.indexOf(sa, found + 1)) {
      // `(.+/|)`: nothing, or at least one character and then `/`.
      const middle = found - rest;
      if (middle !== 0 && (middle < 2 || principal[found - 1] !== '/')) continue;
      // `(/.+)?`: the end, or `/` and at least one character.
      const end = found + sa.length;
      if (end === principal.length || (principal[end] === '/' && end + 1 < principal.length)) return true;
    }
  }
  return false;
}
