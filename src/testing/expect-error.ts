// Assertions for tests: a call fails with a MutualError of one stable code (and, optionally, a
// message naming the bad input). Shared so every test checks codes the same way.
import assert from 'node:assert/strict';
import { type ErrorCode, isMutualError } from '../errors.ts';

function matcher(code: ErrorCode, name: string, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(isMutualError(error, code), `${name}: expected ${code}, got ${String(error)}`);
    if (message) assert.match(error.message, message, name);
    return true;
  };
}

export function throwsCode(fn: () => unknown, code: ErrorCode, name = '', message?: RegExp): void {
  assert.throws(fn, matcher(code, name, message), name);
}

export async function rejectsCode(
  promise: Promise<unknown>,
  code: ErrorCode,
  name = '',
  message?: RegExp,
): Promise<void> {
  await assert.rejects(promise, matcher(code, name, message), name);
}
