import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { errorCatalog, isMutualError, MutualError } from './errors.ts';
import { renderErrorsMarkdown } from './errors-doc.ts';

test('docs/errors.md documents exactly the codes in the catalog', () => {
  const documented = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  assert.equal(documented, renderErrorsMarkdown(), 'docs/errors.md is stale: run `npm run docs:errors`');
  for (const code of Object.keys(errorCatalog)) assert.match(documented, new RegExp(`### ${code}\\n`));
});

test('error codes follow MUTUAL_<AREA>_<WHAT> and every entry says what to do', () => {
  for (const [code, description] of Object.entries(errorCatalog)) {
    assert.match(code, /^MUTUAL_[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
    assert.ok(description.meaning.length > 10 && description.action.length > 10, code);
  }
});

test('MutualError carries its code and frozen detail', () => {
  const error = new MutualError('MUTUAL_SPIFFE_ID_INVALID', 'bad', { detail: { rule: 'scheme' } });
  assert.ok(Object.isFrozen(error.detail));
  assert.equal(error.detail.rule, 'scheme');
  assert.equal(isMutualError(error, 'MUTUAL_SPIFFE_ID_INVALID'), true);
  assert.equal(isMutualError(error, 'MUTUAL_CLI_USAGE'), false);
  assert.equal(isMutualError(new Error('x')), false);
});
