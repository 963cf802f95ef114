import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineCounter, parseAllDocuments, parseDocument } from 'yaml';
import { duplicateKeys, LINEAR_KEYS, toJsOrProblem } from './index.ts';

/** Each duplicate as line:column and key, as the readers report them. */
function duplicates(text: string, isMerge = false): string[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: isMerge, ...LINEAR_KEYS });
  assert.deepEqual(doc.errors, []);
  return duplicateKeys(doc, { isMerge }).map((problem) => {
    const { line, col } = lineCounter.linePos(problem.offset);
    return `${line}:${col} ${problem.message}`;
  });
}

test('duplicateKeys: every key written twice in one map, where the yaml package reports it', () => {
  const cases: Array<[string, string[]]> = [
    ['a: 1\nb: 2\n', []],
    ['a: 1\na: 2\n', ['2:1 Map keys must be unique: "a" is written twice']],
    [
      'a: 1\na: 2\na: 3\n',
      [
        '2:1 Map keys must be unique: "a" is written twice',
        '3:1 Map keys must be unique: "a" is written twice',
      ],
    ],
    // Nested maps, flow maps and maps in sequences each have their own keys.
    ['x: {a: 1}\ny: {a: 1}\n', []],
    ['x: {a: 1, a: 2}\n', ['1:11 Map keys must be unique: "a" is written twice']],
    ['- {a: 1}\n- a: 1\n  b: 2\n  b: 3\n', ['4:3 Map keys must be unique: "b" is written twice']],
    // Keys compare by value: quoting does not make a key another, a number is not its string.
    ['a: 1\n"a": 2\n', ['2:1 Map keys must be unique: "a" is written twice']],
    ['1: x\n"1": y\n', []],
    ['1: x\n0x1: y\n', ['2:1 Map keys must be unique: "1" is written twice']],
    ['~: x\nnull: y\n', ['2:1 Map keys must be unique: "null" is written twice']],
  ];
  for (const [text, expected] of cases) assert.deepEqual(duplicates(text), expected, text);
});

test('duplicateKeys: merge keys may repeat where merges are on, and count as keys where they are not', () => {
  const text = 'base: &b {a: 1}\nx:\n  <<: *b\n  <<: *b\n';
  assert.deepEqual(duplicates(text, true), []);
  assert.deepEqual(duplicates(text, false), ['4:3 Map keys must be unique: "<<" is written twice']);
});

test('duplicateKeys: agrees with the yaml package on what is a duplicate', () => {
  for (const text of [
    'a: 1\na: 2\n',
    'x: {a: 1, a: 2}\n',
    '1: x\n"1": y\n',
    'a: 1\n"a": 2\n',
    'k: [{a: 1}, {a: 1}]\n',
  ]) {
    const strict = parseDocument(text, { uniqueKeys: true }).errors.filter((e) => e.code === 'DUPLICATE_KEY');
    const linear = duplicateKeys(parseDocument(text, LINEAR_KEYS));
    assert.deepEqual(
      linear.map((problem) => problem.offset),
      strict.map((error) => error.pos[0]),
      text,
    );
  }
});

test('duplicateKeys: 200 000 keys in one map are checked in one pass', () => {
  const text = `data:\n${Array.from({ length: 200_000 }, (_, i) => `  k${i}: v\n`).join('')}  k7: again\n`;
  const problems = duplicateKeys(parseDocument(text, LINEAR_KEYS));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /"k7" is written twice/);
});

test('toJsOrProblem: a billion laughs is a problem at its document, not a thrown error', () => {
  const levels = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (const [i, name] of [...'bcdefghi'].entries()) {
    const previous = 'abcdefghi'[i]!;
    levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
  }
  const [doc] = parseAllDocuments(`---\n${levels.join('\n')}\n`);
  const result = toJsOrProblem(doc!);
  assert.ok('problem' in result);
  assert.equal(result.problem.offset, 4);
  assert.match(
    result.problem.message,
    /aliases \(\*name\) expand too far .*billion laughs.*write the repeated parts out/,
  );
  // A few aliases, and an alias inside its own anchor, are values as before.
  assert.deepEqual(toJsOrProblem(parseDocument('a: &x [1]\nb: *x\n')), { value: { a: [1], b: [1] } });
  const own = toJsOrProblem(parseDocument('a: &c\n  d: *c\n'));
  assert.ok('value' in own);
});
