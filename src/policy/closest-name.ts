// "Did you mean …?" for a misspelt field or name: the known name fewest edits away (case aside),
// within two edits; pure. Shared by policy files and mesh.yaml, so both suggest alike.

/** The candidate closest to `word` when one is at most `maxEdits` edits away; the first on a tie. */
export function closestName(word: string, candidates: readonly string[], maxEdits = 2): string | undefined {
  let best: string | undefined;
  let bestEdits = maxEdits + 1;
  for (const candidate of candidates) {
    const edits = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (edits < bestEdits) [best, bestEdits] = [candidate, edits];
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}
