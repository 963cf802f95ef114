// Golden files: the expected output of a command, byte for byte, in test/golden/<name>.
// `UPDATE_GOLDEN=1` rewrites them from the actual output (review the diff before committing);
// otherwise any difference fails with a line diff that names the file.
import { AssertionError } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from '../e2e/run-mutual.ts';

export const GOLDEN_DIR = join(repoRoot(), 'test', 'golden');

export async function assertGolden(name: string, actual: string): Promise<void> {
  const path = join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await writeFile(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = await readFile(path, 'utf8');
  } catch {
    throw new AssertionError({
      message: `test/golden/${name} does not exist: run the test with UPDATE_GOLDEN=1 to write it, and review it`,
    });
  }
  if (actual === expected) return;
  throw new AssertionError({
    message: `output differs from test/golden/${name} (- golden, + actual); if the change is intended, run the test with UPDATE_GOLDEN=1 and commit the file\n${lineDiff(expected, actual)}`,
  });
}

/** A unified-style diff of two texts by lines, with two lines of context around each change. */
export function lineDiff(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  // Longest common subsequence table, from the ends.
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const lines: Array<{ mark: ' ' | '-' | '+'; text: string; line: number }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push({ mark: ' ', text: a[i]!, line: i + 1 });
      i++;
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      lines.push({ mark: '-', text: a[i]!, line: i + 1 });
      i++;
    } else {
      lines.push({ mark: '+', text: b[j]!, line: i + 1 });
      j++;
    }
  }
  const isNear = (index: number) =>
    lines.slice(Math.max(0, index - 2), index + 3).some((entry) => entry.mark !== ' ');
  const out: string[] = [];
  let isSkipping = false;
  for (const [index, entry] of lines.entries()) {
    if (!isNear(index)) {
      if (!isSkipping) out.push('  …');
      isSkipping = true;
      continue;
    }
    if (isSkipping || out.length === 0) out.push(`@@ line ${entry.line} @@`);
    isSkipping = false;
    out.push(`${entry.mark} ${entry.text}`);
  }
  return out.filter((line, index) => !(line === '  …' && index === 0)).join('\n');
}
