// PKI throughput on one core: key pairs, CSRs, certificate signing (library and template paths)
// and peer verification (first sight of a chain and cached), beside `openssl speed ecdsap256` as
// the limit. Not a test: numbers depend on the machine. Writes bench/results/pki-latest.json.
// Run with `npm run bench`.
import { execFile } from 'node:child_process';
import {
  generateKeyPairSync,
  type KeyObject,
  generateKeyPair as nodeGenerateKeyPair,
  sign,
  verify,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { systemClock } from '../src/clock.ts';
import {
  admitCsr,
  createCsr,
  createIssuer,
  createPeerVerifier,
  createTrustAnchor,
  decodePem,
  generateKeyPair,
  type IssuedSvid,
  issueSvid,
} from '../src/pki/index.ts';
import { createSvidSigner } from '../src/pki/svid-template.ts';

const WARMUP_MS = 200;
const RUN_MS = 1000;
const OPENSSL_SECONDS = 2;
const OPENSSL_RUNS = 2;
/** Rounds for the rows compared with openssl (best round counts); other rows run once. */
const COMPARED_ROUNDS = 3;
const AIM_SIGN_PERCENT = 25;
const AIM_CACHED_VERIFY_PERCENT = 50;
const TD = 'bench.local';

interface Measurement {
  readonly name: string;
  readonly opsPerSec: number;
  readonly usPerOp: number;
  readonly iterations: number;
  readonly roundsOpsPerSec: readonly number[];
  readonly note?: string;
}

/**
 * Runs `op` back to back (one at a time, so one core) for a warm-up, then `rounds` times for
 * RUN_MS each, and reports the best round's operations per second: other processes on a shared
 * machine only ever slow a round down. `limit` caps the iterations when each needs fresh input.
 */
async function measure(
  name: string,
  op: (i: number) => unknown,
  options: { note?: string; limit?: number; warmupOps?: number; rounds?: number } = {},
): Promise<Measurement> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let i = 0;
  const warmupEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmupEnd && i < (options.warmupOps ?? limit)) await op(i++);
  const roundsOpsPerSec: number[] = [];
  let best = { iterations: 0, seconds: 1 };
  for (let round = 0; round < (options.rounds ?? 1); round++) {
    const start = performance.now();
    let iterations = 0;
    while (performance.now() - start < RUN_MS && i < limit) {
      await op(i++);
      iterations++;
    }
    const seconds = (performance.now() - start) / 1000;
    roundsOpsPerSec.push(Math.round(iterations / seconds));
    if (iterations / seconds > best.iterations / best.seconds) best = { iterations, seconds };
  }
  const result = {
    name,
    opsPerSec: Math.round(best.iterations / best.seconds),
    usPerOp: Math.round((best.seconds * 1e7) / best.iterations) / 10,
    iterations: best.iterations,
    roundsOpsPerSec,
    ...(options.note ? { note: options.note } : {}),
  };
  const rounds = roundsOpsPerSec.length > 1 ? `  (rounds: ${roundsOpsPerSec.join(', ')})` : '';
  console.log(
    `  ${name.padEnd(44)} ${String(result.opsPerSec).padStart(8)}/s ${result.usPerOp.toFixed(1).padStart(9)} µs${rounds}`,
  );
  return result;
}

/** `openssl speed ecdsap256`, best of OPENSSL_RUNS runs (the same rule as ours). */
async function opensslSpeed(): Promise<{
  signPerSec: number;
  verifyPerSec: number;
  runs: Array<{ signPerSec: number; verifyPerSec: number }>;
  version: string;
  command: string;
}> {
  const args = ['speed', '-seconds', String(OPENSSL_SECONDS), 'ecdsap256'];
  const run = promisify(execFile);
  const runs: Array<{ signPerSec: number; verifyPerSec: number }> = [];
  for (let i = 0; i < OPENSSL_RUNS; i++) {
    const { stdout } = await run('openssl', args);
    const row = /256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(stdout);
    if (!row) throw new Error(`cannot read sign/s and verify/s from openssl speed:\n${stdout}`);
    runs.push({ signPerSec: Math.round(Number(row[1])), verifyPerSec: Math.round(Number(row[2])) });
  }
  const version = (await run('openssl', ['version'])).stdout.trim();
  return {
    signPerSec: Math.max(...runs.map((r) => r.signPerSec)),
    verifyPerSec: Math.max(...runs.map((r) => r.verifyPerSec)),
    runs,
    version,
    command: `openssl ${args.join(' ')}`,
  };
}

function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the bench');
    dir = parent;
  }
  return dir;
}

function derOf(svid: IssuedSvid): Buffer {
  return decodePem(svid.certificatePem)[0]!.der;
}

async function main(): Promise<void> {
  const started = performance.now();
  const loadAtStart = loadavg().map((load) => Math.round(load * 100) / 100);
  console.log(
    `PKI bench: Node ${process.version} (OpenSSL ${process.versions.openssl}), one process, one at a time; load average ${loadAtStart.join(' ')}`,
  );
  console.log(
    `Rows compared with openssl: best of ${COMPARED_ROUNDS} rounds of ${RUN_MS} ms (the machine may be shared)`,
  );
  const clock = systemClock;
  const anchor = await createTrustAnchor({ trustDomain: TD, clock });
  const issuer = await createIssuer(anchor, { trustDomain: TD, clock });
  const spiffeId = `spiffe://${TD}/ns/bench/sa/web`;
  // Fresh KeyObjects for the workloads, as a CA gets them (one per admitted CSR).
  const keyPool: KeyObject[] = Array.from(
    { length: 256 },
    () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  );
  const poolKey = (i: number) => keyPool[i % keyPool.length]!;
  const workload = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csrPem = await createCsr({ privateKey: workload.privateKey, spiffeId });
  const results: Measurement[] = [];
  const generateAsync = promisify(nodeGenerateKeyPair);

  console.log('\nKeys and CSRs');
  results.push(
    await measure('key pair P-256, generateKeyPairSync', () =>
      generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    ),
    await measure(
      'key pair P-256, generateKeyPair (async)',
      () => generateAsync('ec', { namedCurve: 'P-256' }),
      {
        note: 'one in flight; the work runs on a libuv pool thread',
      },
    ),
    await measure('key pair P-256, pki generateKeyPair()', () => generateKeyPair()),
    await measure('CSR creation (createCsr)', () => createCsr({ privateKey: workload.privateKey, spiffeId })),
    await measure('CSR admission (admitCsr: parse + verify)', () => admitCsr(csrPem, spiffeId)),
  );

  console.log('\nCertificate signing');
  const firstSigner = createSvidSigner(issuer);
  const renewSigner = createSvidSigner(issuer);
  await renewSigner.issue({ spiffeId, publicKey: poolKey(0), clock });
  results.push(
    await measure('sign, library (issueSvid)', (i) =>
      issueSvid(issuer, { spiffeId, publicKey: poolKey(i), clock }),
    ),
    await measure(
      'sign, template: first for an identity',
      (i) => firstSigner.issue({ spiffeId: `${spiffeId}/${i}`, publicKey: poolKey(i), clock }),
      { note: 'library build + template extraction' },
    ),
    await measure(
      'sign, template: renewal',
      (i) => renewSigner.issue({ spiffeId, publicKey: poolKey(i), clock }),
      { note: 'new key each time; includes PEM encoding', rounds: COMPARED_ROUNDS },
    ),
  );
  if (renewSigner.counts.byLibrary !== 1)
    throw new Error(`renewals left the fast path: ${JSON.stringify(renewSigner.counts)}`);

  console.log('\nPeer verification (createPeerVerifier.verifySvid, leaf + issuer against the anchor)');
  const issuerDer = decodePem(issuer.certificatePem)[0]!.der;
  const anchors = [decodePem(anchor.certificatePem)[0]!.der];
  const distinctLeaves: Buffer[] = [];
  const poolSigner = createSvidSigner(issuer);
  for (let i = 0; i < 8000; i++)
    distinctLeaves.push(derOf(await poolSigner.issue({ spiffeId, publicKey: poolKey(i), clock })));
  const uncachedVerifier = createPeerVerifier({ anchors, clock, trustDomains: [TD] });
  const cachedVerifier = createPeerVerifier({ anchors, clock, trustDomains: [TD] });
  const check = (verdict: { ok: boolean }) => {
    if (!verdict.ok) throw new Error(`verification failed: ${JSON.stringify(verdict)}`);
  };
  const cachedChain = [distinctLeaves[0]!, issuerDer];
  results.push(
    await measure(
      'verify, uncached (first sight of a chain)',
      (i) => check(uncachedVerifier.verifySvid([distinctLeaves[i]!, issuerDer], { expectedId: spiffeId })),
      { limit: distinctLeaves.length, warmupOps: 500, note: 'a different leaf every call' },
    ),
    await measure(
      'verify, cached (same chain again)',
      () => check(cachedVerifier.verifySvid(cachedChain, { expectedId: spiffeId })),
      { rounds: COMPARED_ROUNDS },
    ),
  );

  console.log('\nRaw node:crypto ECDSA P-256 / SHA-256 over a 400-byte message');
  const raw = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const message = Buffer.alloc(400, 0x5a);
  const signature = sign('sha256', message, raw.privateKey);
  results.push(
    await measure('node crypto.sign', () => sign('sha256', message, raw.privateKey), {
      rounds: COMPARED_ROUNDS,
    }),
    await measure('node crypto.verify', () => verify('sha256', message, raw.publicKey, signature), {
      rounds: COMPARED_ROUNDS,
    }),
  );

  console.log(`\nRunning openssl speed -seconds ${OPENSSL_SECONDS} ecdsap256, best of ${OPENSSL_RUNS} …`);
  const openssl = await opensslSpeed();
  const rate = (name: string) => results.find((result) => result.name === name)!.opsPerSec;
  const compare = (name: string, ours: number, limit: number, aimPercent?: number) => {
    const percent = Math.round((1000 * ours) / limit) / 10;
    return {
      name,
      ours,
      limit,
      percent,
      aimPercent,
      met: aimPercent === undefined ? undefined : percent >= aimPercent,
    };
  };
  const comparisons = [
    compare('sign, template: renewal', rate('sign, template: renewal'), openssl.signPerSec, AIM_SIGN_PERCENT),
    compare('sign, library (issueSvid)', rate('sign, library (issueSvid)'), openssl.signPerSec),
    compare('node crypto.sign', rate('node crypto.sign'), openssl.signPerSec),
    compare(
      'verify, cached (same chain again)',
      rate('verify, cached (same chain again)'),
      openssl.verifyPerSec,
      AIM_CACHED_VERIFY_PERCENT,
    ),
    compare(
      'verify, uncached (first sight of a chain)',
      rate('verify, uncached (first sight of a chain)'),
      openssl.verifyPerSec,
    ),
    compare('node crypto.verify', rate('node crypto.verify'), openssl.verifyPerSec),
  ];
  console.log(
    `\nAgainst ${openssl.version}: sign ${openssl.signPerSec}/s, verify ${openssl.verifyPerSec}/s (raw ECDSA, one core)`,
  );
  for (const row of comparisons) {
    const aim =
      row.aimPercent === undefined ? '' : `aim ≥ ${row.aimPercent}%: ${row.met ? 'MET' : 'NOT MET'}`;
    const limitName = row.limit === openssl.signPerSec ? 'sign' : 'verify';
    console.log(
      `  ${row.name.padEnd(44)} ${String(row.ours).padStart(8)}/s = ${row.percent.toFixed(1).padStart(5)}% of openssl ${limitName}  ${aim}`,
    );
  }

  const root = projectRoot();
  const file = join(root, 'bench', 'results', 'pki-latest.json');
  await mkdir(dirname(file), { recursive: true });
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((load) => Math.round(load * 100) / 100) },
    method: `each operation back to back in one process: ${WARMUP_MS} ms warm-up, then ${RUN_MS} ms timed; rows compared with openssl: best of ${COMPARED_ROUNDS} rounds; openssl: best of ${OPENSSL_RUNS} runs`,
    results,
    openssl,
    comparisons,
    totalSeconds: Math.round((performance.now() - started) / 100) / 10,
  };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nWrote ${file} (${report.totalSeconds} s)`);
}

await main();
