// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value; for a header,
// any value at all, an empty one too: Envoy's present_match). Compiled once
// into plain data (one shape for every list, so the matcher stays monomorphic and inlinable):
// a request costs a Set lookup and a few startsWith/endsWith calls.

/**
 * How Istio reads a pattern whose "*" is not a wildcard, or undefined when every "*" is one.
 * Istio accepts such a value and matches it as StringMatcherWithPrefix does: a leading "*" makes a
 * suffix match, else a trailing one a prefix match, and any other "*" is a literal character.
 */
export function literalWildcardNote(pattern: string): string | undefined {
  if (pattern.length < 2) return undefined;
  if (pattern.startsWith('*') && pattern.endsWith('*')) {
    return `"${pattern}" is a suffix match of "${pattern.slice(1)}" (its last "*" is a literal "*"), as Istio reads it`;
  }
  if (pattern.slice(1, -1).includes('*')) {
    return `"${pattern}" has a "*" in the middle, which Istio matches as a literal "*": only a leading or a trailing "*" is a wildcard`;
  }
  return undefined;
}

export interface Patterns {
  readonly isAny: boolean;
  /** `*` matches an empty value too (headers: Istio makes `*` a presence check). */
  readonly isAnyPresent: boolean;
  readonly isCaseInsensitive: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly suffixes: readonly string[];
}

/**
 * One matcher for a list of patterns: true when any pattern matches. Case-insensitive for hosts;
 * `isPresence` for header values, where `*` matches any value that is there, empty or not.
 */
export function compilePatterns(
  patterns: readonly string[],
  isCaseInsensitive = false,
  isPresence = false,
): Patterns {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let isAny = false;
  for (const raw of patterns) {
    const pattern = isCaseInsensitive ? raw.toLowerCase() : raw;
    // Istio's order (StringMatcherWithPrefix): a leading "*" first; any other "*" is literal.
    if (pattern === '*') isAny = true;
    else if (pattern.startsWith('*')) suffixes.push(pattern.slice(1));
    else if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1));
    else exact.add(pattern);
  }
  return { isAny, isAnyPresent: isAny && isPresence, isCaseInsensitive, exact, prefixes, suffixes };
}

export function matchesPatterns(patterns: Patterns, input: string): boolean {
  const value = patterns.isCaseInsensitive ? input.toLowerCase() : input;
  if (patterns.isAny) return value.length > 0 || patterns.isAnyPresent;
  if (patterns.exact.size > 0 && patterns.exact.has(value)) return true;
  const { prefixes, suffixes } = patterns;
  for (let i = 0; i < prefixes.length; i++) if (value.startsWith(prefixes[i]!)) return true;
  for (let i = 0; i < suffixes.length; i++) if (value.endsWith(suffixes[i]!)) return true;
  return false;
}

/**
 * A header value read as a list: the whole value or any one of its `,`-separated elements (Envoy
 * joins a header sent more than once with `,`), as Istio's HeaderMatcherWithRegex does for
 * `request.experimental.inline.headers`: the regex `^v$|^v,.*|.*,v,.*|.*,v$`. Elements are not
 * trimmed: in `a, b` the second is ` b`. `prefix*` and `*suffix` become `prefix.*` and `.*suffix`.
 */
export function matchesHeaderElements(patterns: Patterns, value: string): boolean {
  if (patterns.isAny) return value.length > 0 || patterns.isAnyPresent;
  for (const exact of patterns.exact) {
    if (
      value === exact ||
      value.startsWith(`${exact},`) ||
      value.endsWith(`,${exact}`) ||
      value.includes(`,${exact},`)
    ) {
      return true;
    }
  }
  const { prefixes, suffixes } = patterns;
  for (let i = 0; i < prefixes.length; i++) {
    if (value.startsWith(prefixes[i]!) || value.includes(`,${prefixes[i]!}`)) return true;
  }
  for (let i = 0; i < suffixes.length; i++) {
    if (value.endsWith(suffixes[i]!) || value.includes(`${suffixes[i]!},`)) return true;
  }
  return false;
}

/** The exact values of a list when it has only exact patterns (usable as index keys), else undefined. */
export function exactValues(patterns: readonly string[]): readonly string[] | undefined {
  return patterns.every((pattern) => !pattern.includes('*')) ? patterns : undefined;
}

/**
 * `namespaces` as Istio matches them: the regex `.*\/ns/<value>/.*` (each `*` as `.*`) over the
 * whole principal, not the namespace segment alone. So `prod` needs `/ns/prod/` somewhere in it
 * (`td/ns/prod` alone does not match, `td/ns/dev/x/ns/prod/y` does), `prod*` needs `/ns/prod`
 * with a `/` after it, `*-prod` needs `/ns/` then `-prod/`, and `*` needs `/ns/` then a `/`.
 */
export interface NamespacePatterns {
  /** `/ns/<value>/` for each exact value. */
  readonly exact: readonly string[];
  /** `/ns/<prefix>` for each `prefix*`. */
  readonly prefixes: readonly string[];
  /** `<suffix>/` for each `*suffix`. */
  readonly suffixes: readonly string[];
  readonly isAny: boolean;
  /** Istio's regex itself, for a value with a "*" in the middle or at both ends (`team-*-prod`). */
  readonly globs: readonly RegExp[];
}

export function compileNamespacePatterns(patterns: readonly string[]): NamespacePatterns {
  const exact: string[] = [];
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  const globs: RegExp[] = [];
  let isAny = false;
  for (const pattern of patterns) {
    if (pattern === '*') isAny = true;
    else if (pattern.slice(1, -1).includes('*') || (pattern.startsWith('*') && pattern.endsWith('*'))) {
      const glob = pattern
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*');
      globs.push(new RegExp(`^.*/ns/${glob}/.*$`));
    } else if (pattern.endsWith('*')) prefixes.push(`/ns/${pattern.slice(0, -1)}`);
    else if (pattern.startsWith('*')) suffixes.push(`${pattern.slice(1)}/`);
    else exact.push(`/ns/${pattern}/`);
  }
  return { exact, prefixes, suffixes, isAny, globs };
}

/** Does the principal (with or without `spiffe://`) match any of the namespace patterns? */
export function matchesNamespace(patterns: NamespacePatterns, principal: string): boolean {
  const { exact, prefixes, suffixes, globs } = patterns;
  for (let i = 0; i < exact.length; i++) if (principal.includes(exact[i]!)) return true;
  for (let i = 0; i < globs.length; i++) if (globs[i]!.test(principal)) return true;
  for (let i = 0; i < prefixes.length; i++) {
    const at = principal.indexOf(prefixes[i]!);
    if (at >= 0 && principal.indexOf('/', at + prefixes[i]!.length) >= 0) return true;
  }
  const ns = principal.indexOf('/ns/');
  if (ns < 0) return false;
  if (patterns.isAny && principal.indexOf('/', ns + 4) >= 0) return true;
  for (let i = 0; i < suffixes.length; i++) if (principal.indexOf(suffixes[i]!, ns + 4) >= 0) return true;
  return false;
}
