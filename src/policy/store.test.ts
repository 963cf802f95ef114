import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { MutualError } from '../errors.ts';
import { rejectsCode } from '../testing/expect-error.ts';
import type { PolicyDiagnostic } from './diagnostic.ts';
import { loadPolicyFiles } from './load.ts';
import { createPolicyStore, type PolicyStore } from './store.ts';
import { ap, pa, workload } from './test-fixtures.ts';

const web = workload('demo', { app: 'web' });
const STRICT = pa('ns', 'demo', 'mtls: {mode: STRICT}');
const DISABLE = pa('ns', 'demo', 'mtls: {mode: DISABLE}');

interface Harness {
  dir: string;
  store: PolicyStore;
  events: EventEmitter;
  [Symbol.asyncDispose](): Promise<void>;
}

async function harness(files: Record<string, string>): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const events = new EventEmitter();
  const store = await createPolicyStore({
    directory: dir,
    debounceMs: 20,
    // The watch alone must do it; the poll is only a safety net.
    pollIntervalMs: 0,
    onChange: (_set, generation) => events.emit('change', generation),
    onError: (error: MutualError, diagnostics: readonly PolicyDiagnostic[]) =>
      events.emit('error-report', error, diagnostics),
  });
  return {
    dir,
    store,
    events,
    async [Symbol.asyncDispose]() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('store: a file written into the directory is in force for the next forWorkload', async () => {
  await using h = await harness({ 'ns.yaml': STRICT });
  assert.equal(h.store.forWorkload(web).peerAuthenticationMode(8080), 'STRICT');
  assert.equal(h.store.generation, 1);
  const changed = once(h.events, 'change');
  await writeFile(join(h.dir, 'deny.yml'), ap('deny-all', 'demo', '{}'));
  await changed;
  const decision = h.store
    .forWorkload(web)
    .authorizeConnection({ sourceIp: '10.0.0.1', destinationPort: 8080 });
  assert.deepEqual(decision, { allowed: false, policy: 'demo/deny-all', reason: 'no-allow-match' });
  assert.equal(h.store.generation, 2);
});

test('store: a broken file is reported with file:line and the last good set keeps serving', async () => {
  await using h = await harness({ 'ns.yaml': STRICT });
  const reported = once(h.events, 'error-report');
  await writeFile(join(h.dir, 'ns.yaml'), `${DISABLE}    bad: [\n`);
  const [error, diagnostics] = (await reported) as [MutualError, PolicyDiagnostic[]];
  assert.equal(error.code, 'MUTUAL_POLICY_YAML_INVALID');
  assert.match(error.message, /ns\.yaml:\d+:\d+/);
  assert.ok(diagnostics.length > 0 && diagnostics[0]!.file.endsWith('ns.yaml'));
  assert.equal(h.store.forWorkload(web).peerAuthenticationMode(8080), 'STRICT', 'last good set');
  assert.equal(h.store.lastError, error);
  // Fixing the file puts the new set in force and clears the error.
  const changed = once(h.events, 'change');
  await writeFile(join(h.dir, 'ns.yaml'), DISABLE);
  await changed;
  assert.equal(h.store.forWorkload(web).peerAuthenticationMode(8080), 'DISABLE');
  assert.equal(h.store.lastError, undefined);
});

test('store: editors that save by writing a temporary file and renaming it over the old one', async () => {
  await using h = await harness({ 'ns.yaml': STRICT });
  const changed = once(h.events, 'change');
  await writeFile(join(h.dir, '.ns.yaml.swp'), DISABLE);
  await rename(join(h.dir, '.ns.yaml.swp'), join(h.dir, 'ns.yaml'));
  await changed;
  assert.equal(h.store.forWorkload(web).peerAuthenticationMode(8080), 'DISABLE');
  // …and a second save the same way still works (the watch is on the directory, not the file).
  const again = once(h.events, 'change');
  await writeFile(join(h.dir, '.ns.yaml.swp'), STRICT);
  await rename(join(h.dir, '.ns.yaml.swp'), join(h.dir, 'ns.yaml'));
  await again;
  assert.equal(h.store.forWorkload(web).peerAuthenticationMode(8080), 'STRICT');
});

test('store: deleting a file removes its policies', async () => {
  await using h = await harness({ 'ns.yaml': STRICT, 'other.yaml': ap('a', 'demo', 'rules:\n- {}') });
  const changed = once(h.events, 'change');
  await rm(join(h.dir, 'ns.yaml'));
  await changed;
  assert.equal(h.store.forWorkload(web).peerAuthenticationMode(8080), 'PERMISSIVE');
  assert.deepEqual(h.store.forWorkload(web).authorizationPolicies.ALLOW, ['demo/a']);
});

test('store: reload() without a change keeps the set and its generation', async () => {
  await using h = await harness({ 'ns.yaml': STRICT });
  const before = h.store.current;
  assert.equal(await h.store.reload(), false);
  assert.equal(h.store.current, before);
  assert.equal(h.store.generation, 1);
});

test('loadPolicyFiles: files that still hash to unlessFingerprint are not parsed again', async () => {
  await using h = await harness({ 'ns.yaml': STRICT });
  const first = await loadPolicyFiles([h.dir]);
  // What the store's poll asks every few seconds: with 40 files, re-parsing them was most of an
  // idle sidecar's CPU.
  assert.deepEqual(await loadPolicyFiles([h.dir], { unlessFingerprint: first.fingerprint }), {
    unchanged: true,
    fingerprint: first.fingerprint,
  });
  await writeFile(join(h.dir, 'ns.yaml'), DISABLE);
  const changed = await loadPolicyFiles([h.dir], { unlessFingerprint: first.fingerprint });
  assert.ok(!('unchanged' in changed), 'a changed file is parsed');
  assert.notEqual(changed.fingerprint, first.fingerprint);
  assert.equal(changed.resources.length, 1);
});

test('store: a broken file fixed back to the set in force clears the error; left broken, it is reported once', async () => {
  await using h = await harness({ 'ns.yaml': STRICT });
  const reports: MutualError[] = [];
  h.events.on('error-report', (error: MutualError) => reports.push(error));
  await writeFile(join(h.dir, 'ns.yaml'), 'kind: [');
  assert.equal(await h.store.reload(), false);
  assert.equal(await h.store.reload(), false);
  assert.equal(reports.length, 1, 'the same broken files are reported once');
  assert.ok(h.store.lastError);
  await writeFile(join(h.dir, 'ns.yaml'), STRICT);
  assert.equal(await h.store.reload(), false, 'the files are the set in force again: no new set');
  assert.equal(h.store.lastError, undefined);
  assert.equal(h.store.generation, 1);
});

test('store: the first load must be good; a missing directory is named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-'));
  try {
    await writeFile(join(dir, 'bad.yaml'), pa('x', 'demo', 'mtls: {mode: SOMETIMES}'));
    await rejectsCode(
      createPolicyStore({ directory: dir }),
      'MUTUAL_POLICY_INVALID',
      'first load',
      /bad\.yaml:8:/,
    );
    await rejectsCode(
      createPolicyStore({ directory: join(dir, 'missing') }),
      'MUTUAL_POLICY_NOT_FOUND',
      'missing directory',
      /missing/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('store: the same policy defined in two files is an error naming both places', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-'));
  try {
    await writeFile(join(dir, 'a.yaml'), STRICT);
    await writeFile(join(dir, 'b.yaml'), DISABLE);
    await rejectsCode(
      createPolicyStore({ directory: dir }),
      'MUTUAL_POLICY_INVALID',
      'dup',
      /b\.yaml:2:1: .*defined twice \(first at .*a\.yaml:2\)/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
