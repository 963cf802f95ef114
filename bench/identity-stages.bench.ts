// The certify path stage by stage, in one process on one core: what one CSR costs to admit, one
// token to verify, one certificate to sign, the audit line, and the whole certifier call, so a
// slow `identity.bench` can be pinned on a stage. Not a test: numbers depend on the machine.
// Writes bench/results/identity-stages-latest.json.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../src/clock.ts';
import {
  createCertifier,
  createJoinTokenAuthenticator,
  createJoinTokenIssuer,
  openAuditLog,
} from '../src/identity/index.ts';
import {
  admitCsr,
  bundleToPem,
  createCsr,
  createIssuer,
  createSvidSigner,
  createTrustAnchor,
  createTrustBundle,
  decodePem,
  generateKeyPair,
} from '../src/pki/index.ts';

const WARMUP_MS = 300;
const RUN_MS = 1500;
const ROUNDS = 3;
const TD = 'bench.local';
const IDENTITIES = 32;

interface Measurement {
  readonly name: string;
  readonly opsPerSec: number;
  readonly usPerOp: number;
  /** Process CPU (user + system, all threads) per operation in the best round. */
  readonly cpuUsPerOp: number;
  readonly roundsOpsPerSec: readonly number[];
}

/**
 * One at a time, best of ROUNDS rounds: other processes on a shared machine only slow a round.
 * The CPU time per operation is reported too; it moves less than wall time when the machine is busy.
 */
async function measure(name: string, op: (i: number) => unknown): Promise<Measurement> {
  let i = 0;
  const warmupEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmupEnd) await op(i++);
  const roundsOpsPerSec: number[] = [];
  let cpuUsPerOp = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    let iterations = 0;
    while (performance.now() - start < RUN_MS) {
      await op(i++);
      iterations++;
    }
    roundsOpsPerSec.push(Math.round(iterations / ((performance.now() - start) / 1000)));
    const cpu = process.cpuUsage(cpuStart);
    cpuUsPerOp = Math.min(cpuUsPerOp, Math.round(((cpu.user + cpu.system) / iterations) * 10) / 10);
  }
  const opsPerSec = Math.max(...roundsOpsPerSec);
  const result = { name, opsPerSec, usPerOp: Math.round(1e7 / opsPerSec) / 10, cpuUsPerOp, roundsOpsPerSec };
  console.log(
    `  ${name.padEnd(40)} ${String(opsPerSec).padStart(7)}/s ${result.usPerOp.toFixed(1).padStart(8)} µs  CPU ${cpuUsPerOp.toFixed(1).padStart(7)} µs  (rounds: ${roundsOpsPerSec.join(', ')})`,
  );
  return result;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

const clock = systemClock;
const dir = await mkdtemp(join(tmpdir(), 'mutual-identity-stages-'));
try {
  console.log(
    `identity stages: Node ${process.version}, one process, one call at a time, best of ${ROUNDS} × ${RUN_MS} ms; load average ${loadavg()[0]!.toFixed(2)}`,
  );
  const anchor = await createTrustAnchor({ trustDomain: TD, clock });
  const issuer = await createIssuer(anchor, { trustDomain: TD, clock });
  const bundle = createTrustBundle(TD, [decodePem(anchor.certificatePem)[0]!.der]);
  const tokenKey = await generateKeyPair();
  const minter = createJoinTokenIssuer({ signingKey: tokenKey.privateKey, clock });
  const authenticator = createJoinTokenAuthenticator({
    verificationKey: tokenKey.publicKey,
    trustDomain: TD,
    clock,
  });
  const requests: Array<{ token: string; csr: string; spiffeId: string }> = [];
  for (let i = 0; i < IDENTITIES; i++) {
    const spiffeId = `spiffe://${TD}/ns/bench/sa/sa-${i}`;
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    requests.push({
      spiffeId,
      token: await minter.mint({ namespace: 'bench', serviceAccount: `sa-${i}`, ttlMs: 3_600_000 }),
      csr: await createCsr({ privateKey, spiffeId }),
    });
  }
  const pick = (i: number) => requests[i % requests.length]!;
  const admittedKeys = await Promise.all(requests.map((r) => admitCsr(r.csr, r.spiffeId)));
  const signer = createSvidSigner(issuer);
  const audit = openAuditLog(join(dir, 'audit.log'));
  const certifier = createCertifier({
    authenticator,
    currentIssuer: () => issuer,
    currentBundle: () => bundle,
    audit,
    clock,
    lifetimeMs: 3_600_000,
    skewMs: 60_000,
    rateLimit: { perSecond: 1e9, burst: 1e9 },
  });
  const results = [
    await measure('admitCsr (PEM: parse, checks, verify)', (i) => admitCsr(pick(i).csr, pick(i).spiffeId)),
    await measure('join token verify (authenticate)', (i) => authenticator.authenticate(pick(i).token)),
    await measure('sign, template renewal (SvidSigner)', (i) =>
      signer.issue({
        spiffeId: pick(i).spiffeId,
        publicKey: admittedKeys[i % IDENTITIES]!.publicKey,
        clock,
        lifetimeMs: 3_600_000,
      }),
    ),
    await measure('trust bundle PEM (bundleToPem)', () => bundleToPem(bundle)),
    await measure('audit line (file)', (i) =>
      audit.record({
        time: new Date(clock.now()).toISOString(),
        identity: pick(i).spiffeId,
        result: 'issued',
        serialNumber: '00',
        requester: '127.0.0.1:1',
      }),
    ),
    await measure('certifier.certify (all of the above)', (i) =>
      certifier.certify({ token: pick(i).token, csr: pick(i).csr }, '127.0.0.1:1'),
    ),
  ];
  await audit.close();
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    method: `one call at a time in one process; ${WARMUP_MS} ms warm-up, best of ${ROUNDS} rounds of ${RUN_MS} ms`,
    results,
  };
  const outDir = join(repoRoot(), 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'identity-stages-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log('  written to bench/results/identity-stages-latest.json');
} finally {
  await rm(dir, { recursive: true, force: true });
}
