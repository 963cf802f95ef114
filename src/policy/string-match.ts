// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). Compiled once
// into plain data (one shape for every list, so the matcher stays monomorphic and inlinable):
// a request costs a Set lookup and a few startsWith/endsWith calls.

/** Why a pattern is not one Istio accepts, or undefined if it is fine. */
export function patternProblem(pattern: string): string | undefined {
  const inner = pattern.slice(1, -1);
  if (pattern.length > 1 && inner.includes('*')) {
    return `"${pattern}" has a "*" in the middle; only a leading or a trailing "*" is supported`;
  }
  if (pattern.length > 1 && pattern.startsWith('*') && pattern.endsWith('*')) {
    return `"${pattern}" has a "*" at both ends; use either a prefix ("abc*") or a suffix ("*abc") match`;
  }
  return undefined;
}

export interface Patterns {
  readonly isAny: boolean;
  readonly isCaseInsensitive: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly suffixes: readonly string[];
}

/** One matcher for a list of patterns: true when any pattern matches. Case-insensitive for hosts. */
export function compilePatterns(patterns: readonly string[], isCaseInsensitive = false): Patterns {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let isAny = false;
  for (const raw of patterns) {
    const pattern = isCaseInsensitive ? raw.toLowerCase() : raw;
    if (pattern === '*') isAny = true;
    else if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1));
    else if (pattern.startsWith('*')) suffixes.push(pattern.slice(1));
    else exact.add(pattern);
  }
  return { isAny, isCaseInsensitive, exact, prefixes, suffixes };
}

export function matchesPatterns(patterns: Patterns, input: string): boolean {
  const value = patterns.isCaseInsensitive ? input.toLowerCase() : input;
  if (patterns.isAny) return value.length > 0;
  if (patterns.exact.size > 0 && patterns.exact.has(value)) return true;
  const { prefixes, suffixes } = patterns;
  for (let i = 0; i < prefixes.length; i++) if (value.startsWith(prefixes[i]!)) return true;
  for (let i = 0; i < suffixes.length; i++) if (value.endsWith(suffixes[i]!)) return true;
  return false;
}

/** The exact values of a list when it has only exact patterns (usable as index keys), else undefined. */
export function exactValues(patterns: readonly string[]): readonly string[] | undefined {
  return patterns.every((pattern) => !pattern.includes('*')) ? patterns : undefined;
}
