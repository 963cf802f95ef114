import { type Document, isScalar, visit } from 'yaml';

/** A problem at an offset of the text the document was parsed from. */
export interface YamlProblem {
  readonly offset: number;
  readonly message: string;
}

/**
 * Parse options that leave duplicate keys to duplicateKeys(): the yaml package's own check
 * (uniqueKeys) compares each key with every key before it, so a map of 40 000 keys took 7 s and a
 * 10 MB file minutes.
 */
export const LINEAR_KEYS = { uniqueKeys: false } as const;

/**
 * Every key written twice in one map, as the yaml package's uniqueKeys reports it ("Map keys must
 * be unique"), but with one set per map. Scalar keys compare by value (`1` and `"1"` differ);
 * `<<` merge keys may repeat where merges are on.
 */
export function duplicateKeys(doc: Document, options: { isMerge?: boolean } = {}): YamlProblem[] {
  const problems: YamlProblem[] = [];
  visit(doc, {
    Map: (_key, map) => {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = pair.key;
        if (!isScalar(key) || (options.isMerge === true && key.value === '<<')) continue;
        if (!seen.has(key.value)) {
          seen.add(key.value);
          continue;
        }
        problems.push({
          offset: key.range?.[0] ?? 0,
          message: `Map keys must be unique: ${JSON.stringify(String(key.value))} is written twice`,
        });
      }
    },
  });
  return problems;
}

/**
 * The document's value, or the problem when its aliases expand too far (aliases of aliases, as in
 * a "billion laughs" attack), which the yaml package throws instead of reporting.
 */
export function toJsOrProblem(doc: Document): { value: unknown } | { problem: YamlProblem } {
  try {
    return { value: doc.toJS() };
  } catch (error) {
    if (!/Excessive alias count/.test((error as Error).message)) throw error;
    return {
      problem: {
        offset: doc.contents?.range?.[0] ?? 0,
        message:
          'its aliases (*name) expand too far (aliases of aliases, as in a "billion laughs" attack); write the repeated parts out',
      },
    };
  }
}
