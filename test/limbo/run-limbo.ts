// Runs the x509-limbo conformance suite through `verifyPath` and compares with the committed
// results. CLI: `node dist/test/limbo/run-limbo.js [--update]` prints a summary per family and,
// with --update, rewrites test/limbo/limbo-results.json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { decodePem } from '../../src/pki/pem.ts';
import { createPeerVerifier, type PeerName } from '../../src/pki/verify-peer.ts';

interface LimboCase {
  readonly id: string;
  readonly features: readonly string[] | null;
  readonly trusted_certs: readonly string[];
  readonly untrusted_intermediates: readonly string[];
  readonly peer_certificate: string;
  readonly validation_time: string | null;
  readonly extended_key_usage: readonly string[] | null;
  readonly key_usage: readonly string[] | null;
  readonly expected_result: 'SUCCESS' | 'FAILURE';
  readonly expected_peer_name: { readonly kind: string; readonly value: string } | null;
  readonly max_chain_depth: number | null;
}

export interface LimboResult {
  readonly id: string;
  readonly expected: 'SUCCESS' | 'FAILURE';
  readonly actual: 'SUCCESS' | 'FAILURE';
  readonly pass: boolean;
  /** Our reason code when we rejected, else null. */
  readonly code: string | null;
}

const EKU_OIDS: Record<string, string> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

/** The repository root: compiled tests run from dist/test/limbo, so walk up to package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the limbo harness');
    dir = parent;
  }
  return dir;
}

export const limboPath = () => join(repoRoot(), '..', 'shared', 'testdata', 'x509-limbo', 'limbo.json');
export const resultsPath = () => join(repoRoot(), 'test', 'limbo', 'limbo-results.json');

export function loadLimboCases(): LimboCase[] {
  return (JSON.parse(readFileSync(limboPath(), 'utf8')) as { testcases: LimboCase[] }).testcases;
}

export function runLimboCase(testcase: LimboCase): LimboResult {
  const ders = (pems: readonly string[]) =>
    pems.flatMap((pem) => decodePem(pem, testcase.id).map((b) => b.der));
  let code: string | null;
  try {
    const verifier = createPeerVerifier({
      anchors: ders(testcase.trusted_certs),
      skewMs: 0,
      ...(testcase.max_chain_depth === null ? {} : { maxChainDepth: testcase.max_chain_depth }),
    });
    const peer = testcase.expected_peer_name;
    const result = verifier.verifyPath(
      [...ders([testcase.peer_certificate]), ...ders(testcase.untrusted_intermediates)],
      {
        ...(testcase.validation_time === null ? {} : { atMs: Date.parse(testcase.validation_time) }),
        ...(peer === null ? {} : { peerName: { kind: peer.kind, value: peer.value } as PeerName }),
        // Every limbo case is a SERVER validation, which implies serverAuth when none is named.
        requiredEku: (testcase.extended_key_usage ?? ['serverAuth']).map((name) => EKU_OIDS[name] ?? name),
        ...(testcase.key_usage === null ? {} : { leafKeyUsage: testcase.key_usage }),
      },
    );
    code = result.ok ? null : result.code;
  } catch (error) {
    // A trust bundle we refuse to load is a rejection of the case, recorded with its code.
    code = (error as { code?: string }).code ?? 'THROWN';
  }
  const actual = code === null ? 'SUCCESS' : 'FAILURE';
  return {
    id: testcase.id,
    expected: testcase.expected_result,
    actual,
    pass: actual === testcase.expected_result,
    code,
  };
}

export function runLimbo(): LimboResult[] {
  return loadLimboCases().map(runLimboCase);
}

export function readCommittedResults(): LimboResult[] {
  return JSON.parse(readFileSync(resultsPath(), 'utf8')) as LimboResult[];
}

/** Pass/fail counts per family (the id up to its last "::"). */
export function summarize(results: readonly LimboResult[]): Map<string, { pass: number; fail: number }> {
  const families = new Map<string, { pass: number; fail: number }>();
  for (const result of results) {
    const family = result.id.slice(0, result.id.lastIndexOf('::'));
    const counts = families.get(family) ?? { pass: 0, fail: 0 };
    if (result.pass) counts.pass++;
    else counts.fail++;
    families.set(family, counts);
  }
  return families;
}

function main(argv: readonly string[]): void {
  const results = runLimbo();
  for (const [family, counts] of summarize(results)) {
    console.log(`${family.padEnd(24)} pass ${String(counts.pass).padStart(3)}  fail ${counts.fail}`);
  }
  for (const result of results.filter((r) => !r.pass)) {
    console.log(
      `MISMATCH ${result.id}: expected ${result.expected}, got ${result.actual} (${result.code ?? 'ok'})`,
    );
  }
  const passed = results.filter((r) => r.pass).length;
  console.log(`total: ${passed}/${results.length} as expected`);
  if (argv.includes('--update')) {
    writeFileSync(resultsPath(), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote ${resultsPath()}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}
