// Memory a node:tls server keeps per handshake: a bare mTLS server process (tls-memory-server.ts,
// under the project's Node or TLS_MEMORY_NODE) and a client process (tls-memory-client.ts) making
// handshakes one at a time, for five cases: mTLS accepted, refused for want of a client
// certificate, refused for a certificate from another CA, resumed from a session ticket, and mTLS
// accepted by a server that does not verify the client's chain (no CA). RSS is read after gc() in the server. Not a
// test: numbers depend on the machine. Run with `npm run bench -- tls-memory`. Writes
// bench/results/tls-memory-latest.md and .json (tls-memory-node<version>-latest.* under TLS_MEMORY_NODE).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createTestPki } from '../src/testing/mesh-pki.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const serverNode = process.env.TLS_MEMORY_NODE || process.execPath;
const HANDSHAKES = Number(process.env.TLS_MEMORY_HANDSHAKES ?? 5000);
/** A fresh server's RSS climbs by ~25 MB over its first few thousand handshakes, on any Node, then levels. */
const WARMUP = Number(process.env.TLS_MEMORY_WARMUP ?? 5000);
/** Client runs per case, each followed by a reading: shows whether growth levels off. */
const STEPS = 4;
const KB = 1024;
const MB = 1024 * 1024;

const CASES = [
  { name: 'mtls', title: 'mTLS, accepted (full handshake)', client: 'mtls', server: 'verify' },
  { name: 'no-cert', title: 'refused: no client certificate', client: 'no-cert', server: 'verify' },
  { name: 'resumed', title: 'mTLS, resumed (session ticket)', client: 'resumed', server: 'verify' },
  // Anyone who reaches the port can do this: no credentials from this mesh needed.
  {
    name: 'foreign-cert',
    title: 'refused: certificate from another CA',
    client: 'foreign-cert',
    server: 'verify',
  },
  // The same handshakes as `mtls`, but the server has no CA and takes the chain unverified: what
  // verifying the client's chain adds.
  {
    name: 'mtls-unverified',
    title: 'mTLS, chain not verified (no CA)',
    client: 'mtls',
    server: 'unverified',
  },
  // What the sidecar's inbound did until 2026-11-24 (verified, then getPeerX509Certificate()), and
  // what it does now (no CA in OpenSSL, chain read with getPeerCertificate(true)).
  {
    name: 'mtls-peer-x509',
    title: 'mTLS, verified, getPeerX509Certificate()',
    client: 'mtls',
    server: 'peer-x509',
  },
  {
    name: 'mtls-sidecar',
    title: 'mTLS as the inbound checks it (no CA, getPeerCertificate(true))',
    client: 'mtls',
    server: 'sidecar',
  },
] as const;

interface Reading {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly externalBytes: number;
  readonly completed: number;
  readonly resumed: number;
  readonly refused: number;
}

interface ServerHello {
  readonly port: number;
  readonly node: string;
  readonly openssl: string;
  readonly glibc: string;
}

interface Files {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A client certificate and key from another CA. */
  readonly foreignCert: string;
  readonly foreignKey: string;
}

function runClient(mode: string, port: number, count: number, files: Files): Promise<unknown> {
  const child = spawn(
    process.execPath,
    [
      join(here, 'tls-memory-client.js'),
      mode,
      String(port),
      String(count),
      files.ca,
      mode === 'foreign-cert' ? files.foreignCert : files.clientCert,
      mode === 'foreign-cert' ? files.foreignKey : files.clientKey,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolvePromise, reject) =>
    child.once('exit', (code) =>
      code === 0
        ? resolvePromise(JSON.parse(output))
        : reject(new Error(`client exited ${code}:\n${output}`)),
    ),
  );
}

async function runCase(spec: (typeof CASES)[number], files: Files) {
  const server = spawn(
    serverNode,
    [
      '--expose-gc',
      join(here, 'tls-memory-server.js'),
      files.serverCert,
      files.serverKey,
      files.ca,
      spec.server,
    ],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  server.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolvePromise) => server.once('exit', resolvePromise));
  const lines = createInterface({ input: server.stdout })[Symbol.asyncIterator]();
  const nextLine = async <T>(): Promise<T> => {
    const line = await Promise.race([lines.next(), exited.then(() => ({ done: true, value: '' }))]);
    if (line.done) throw new Error(`the server under ${serverNode} stopped:\n${stderr}`);
    return JSON.parse(line.value) as T;
  };
  const read = () => {
    server.stdin.write('read\n');
    return nextLine<Reading>();
  };
  try {
    const hello = await nextLine<ServerHello>();
    await runClient(spec.client, hello.port, WARMUP, files);
    const before = await read();
    const readings: Array<Reading & { handshakes: number }> = [];
    for (let step = 1; step <= STEPS; step++) {
      const target = Math.round((HANDSHAKES * step) / STEPS);
      const done = readings.at(-1)?.handshakes ?? 0;
      await runClient(spec.client, hello.port, target - done, files);
      readings.push({ ...(await read()), handshakes: target });
    }
    const after = readings.at(-1)!;
    const middle = readings[STEPS / 2 - 1]!;
    const seen = {
      completed: after.completed - before.completed,
      resumed: after.resumed - before.resumed,
      refused: after.refused - before.refused,
    };
    // Each client run starts without a ticket, so `resumed` makes one full handshake per run.
    const asIntended =
      spec.client === 'mtls'
        ? seen.completed === HANDSHAKES && seen.resumed === 0
        : spec.name === 'no-cert' || spec.name === 'foreign-cert'
          ? seen.refused === HANDSHAKES && seen.completed === 0
          : seen.completed === HANDSHAKES && seen.resumed >= HANDSHAKES - STEPS;
    if (!asIntended)
      throw new Error(
        `case ${spec.name}: the server saw ${JSON.stringify(seen)} for ${HANDSHAKES} handshakes`,
      );
    const perHandshakeKb = (bytes: number, count: number) => Math.round((10 * bytes) / count / KB) / 10;
    return {
      name: spec.name,
      title: spec.title,
      server: hello,
      handshakes: HANDSHAKES,
      serverSaw: seen,
      rssBeforeMb: Math.round((10 * before.rssBytes) / MB) / 10,
      rssAfterMb: Math.round((10 * after.rssBytes) / MB) / 10,
      rssKbPerHandshake: perHandshakeKb(after.rssBytes - before.rssBytes, HANDSHAKES),
      rssKbPerHandshakeSecondHalf: perHandshakeKb(
        after.rssBytes - middle.rssBytes,
        after.handshakes - middle.handshakes,
      ),
      v8KbPerHandshake: perHandshakeKb(
        after.heapUsedBytes + after.externalBytes - before.heapUsedBytes - before.externalBytes,
        HANDSHAKES,
      ),
      readings: [{ ...before, handshakes: 0 }, ...readings],
    };
  } finally {
    server.stdin.end();
    const timer = setTimeout(() => server.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  if (!existsSync(serverNode))
    throw new Error(`TLS_MEMORY_NODE=${serverNode}: no such file; give the path of a node binary`);
  if (!Number.isInteger(HANDSHAKES) || HANDSHAKES < STEPS || !Number.isInteger(WARMUP) || WARMUP < 0)
    throw new Error(`TLS_MEMORY_HANDSHAKES (≥ ${STEPS}) and TLS_MEMORY_WARMUP (≥ 0) must be whole numbers`);
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'mutual-tls-memory-'));
  try {
    const pki = await createTestPki(dir, 'bench.local');
    const serverFiles = await pki.workload('server');
    const clientFiles = await pki.workload('client');
    const foreignPki = await createTestPki(join(dir, 'foreign'), 'elsewhere.local');
    const foreignFiles = await foreignPki.workload('client');
    const files: Files = {
      ca: pki.bundleFile,
      serverCert: serverFiles.certFile,
      serverKey: serverFiles.keyFile,
      clientCert: clientFiles.certFile,
      clientKey: clientFiles.keyFile,
      foreignCert: foreignFiles.certFile,
      foreignKey: foreignFiles.keyFile,
    };
    console.log(
      `TLS memory bench: server ${serverNode}, client Node ${process.version}; ${WARMUP} warm-up + ${HANDSHAKES} handshakes per case`,
    );
    const results = [];
    for (const spec of CASES) {
      const result = await runCase(spec, files);
      results.push(result);
      console.log(
        `  ${spec.title.padEnd(34)} RSS ${result.rssBeforeMb} → ${result.rssAfterMb} MB: ${result.rssKbPerHandshake} KB/handshake (second half ${result.rssKbPerHandshakeSecondHalf}; V8 heap+external ${result.v8KbPerHandshake})`,
      );
    }
    const server = results[0]!.server;
    const name = process.env.TLS_MEMORY_NODE
      ? `tls-memory-node${server.node.replace(/^v/, '')}`
      : 'tls-memory';
    const report = {
      date: new Date().toISOString(),
      serverNode: { path: serverNode, version: server.node, openssl: server.openssl, glibc: server.glibc },
      clientNode: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      method: `per case a fresh server process (node --expose-gc, tls.createServer with requestCert, rejectUnauthorized, TLS 1.3, ECDSA P-256 SVIDs from createTestPki; each connection ended after one byte), ${WARMUP} warm-up handshakes, then ${HANDSHAKES} one at a time in ${STEPS} client processes, the server's RSS read after gc(), 200 ms, gc() before and after each`,
      results,
      totalSeconds: Math.round((performance.now() - started) / 100) / 10,
    };
    const rows = results.map(
      (r) =>
        `| ${r.title} | ${r.handshakes} | ${r.rssBeforeMb} → ${r.rssAfterMb} | **${r.rssKbPerHandshake}** | ${r.rssKbPerHandshakeSecondHalf} | ${r.v8KbPerHandshake} |`,
    );
    const markdown = [
      '# TLS server memory per handshake',
      '',
      `Server: Node ${server.node}, OpenSSL ${server.openssl}, glibc ${server.glibc} (\`${serverNode}\`); client: Node ${process.version}; ${report.cpu}; ${report.date}.`,
      '',
      `Method: ${report.method}. KB = 1024 bytes.`,
      '',
      '| case | handshakes | server RSS (MB) | RSS growth per handshake (KB) | same, second half only | V8 heap + external per handshake (KB) |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      'A steady growth in the second half means the memory is kept, not a one-off cache filling up; RSS',
      'growth with no V8 heap or external growth is native memory (Node binding, OpenSSL or the allocator).',
      '',
    ].join('\n');
    const resultsDir = join(root, 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, `${name}-latest.md`), markdown);
    await writeFile(join(resultsDir, `${name}-latest.json`), `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nWrote ${join(resultsDir, `${name}-latest.md`)} and .json (${report.totalSeconds} s)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
