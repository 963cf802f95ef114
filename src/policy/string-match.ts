// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). Compiled once
// into one function per list so a request costs a Set lookup and a few startsWith/endsWith calls.

export type StringMatcher = (value: string) => boolean;

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

/** One matcher for a list of patterns: true when any pattern matches. `lowerCase` for hosts. */
export function compileStringMatcher(patterns: readonly string[], isCaseInsensitive = false): StringMatcher {
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
  if (isAny) return (value) => value.length > 0;
  const match = (value: string): boolean => {
    if (exact.has(value)) return true;
    for (const prefix of prefixes) if (value.startsWith(prefix)) return true;
    for (const suffix of suffixes) if (value.endsWith(suffix)) return true;
    return false;
  };
  if (!isCaseInsensitive) {
    return prefixes.length === 0 && suffixes.length === 0 ? (value) => exact.has(value) : match;
  }
  return (value) => match(value.toLowerCase());
}

/** The exact values of a list when it has only exact patterns (usable as index keys), else undefined. */
export function exactValues(patterns: readonly string[]): readonly string[] | undefined {
  return patterns.every((pattern) => !pattern.includes('*')) ? patterns : undefined;
}
