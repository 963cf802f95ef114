// A real database through real sidecar pairs, as a user meshing Redis would try it: redis-server
// behind an inbound, redis-cli and redis-benchmark (clients nobody here wrote) at the client's
// explicit upstream port. Two pairs: STRICT with the port not listed in --opaque-ports (protocol
// detection, --detect-timeout 1s), and PERMISSIVE with it listed on both sides. Large values,
// pub/sub, a benchmark burst, an idle client past the detection timeout, the server closing first,
// the client half-closing, and plaintext straight at each inbound. Skipped, naming the Debian
// packages, where redis-server or redis-tools is not installed.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);

function missing(): string | false {
  for (const [command, pkg] of [
    ['redis-server', 'redis-server'],
    ['redis-cli', 'redis-tools'],
    ['redis-benchmark', 'redis-tools'],
  ] as const) {
    try {
      execFileSync(command, ['--version'], { stdio: 'pipe' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return `${command} (Debian ${pkg}) is not installed`;
    }
  }
  return false;
}

const DETECT_TIMEOUT_MS = 1_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** A port nothing listens on now (redis-server cannot take port 0; --opaque-ports needs it ahead). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs redis-cli against `port`, with `input` on its stdin if given. */
function redisCli(port: number, args: readonly string[], input?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'redis-cli',
      ['-h', '127.0.0.1', '-p', String(port), ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 20_000, encoding: 'buffer' },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`redis-cli ${args.join(' ')}: ${error.message} ${stderr}`));
        else resolve(stdout.toString());
      },
    );
    child.stdin!.end(input);
  });
}

/** What a raw connection receives until the server's FIN, with the time of each event. */
function conversation(port: number, steps: (socket: Socket) => Promise<void>) {
  const started = Date.now();
  const socket = connect(port, '127.0.0.1');
  socket.allowHalfOpen = true;
  let data = '';
  socket.on('data', (chunk: Buffer) => {
    data += chunk.toString();
  });
  return new Promise<{ data: string; endMs: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no FIN from the server within 10 s; received ${JSON.stringify(data)}`));
    }, 10_000);
    socket.once('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve({ data, endMs: Date.now() - started });
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    steps(socket).catch(reject);
  });
}

describe('redis through sidecar pairs', { skip: missing() }, () => {
  let dir: string;
  let redis: ChildProcess;
  let redisPort: number;
  /** STRICT, port not opaque. */
  let strict: { server: ProxyProcess; client: ProxyProcess; upstream: number };
  /** PERMISSIVE, port listed as opaque on both sides. */
  let opaque: { server: ProxyProcess; client: ProxyProcess; upstream: number };

  /** Every sidecar started, stopped by after() even when before() failed half-way. */
  const started: ProxyProcess[] = [];
  const startSidecar = async (args: string[]) => {
    const sidecar = await startProxyProcess(args);
    started.push(sidecar);
    return sidecar;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-redis-'));
    redisPort = await freePort();
    redis = spawn(
      'redis-server',
      [
        ...['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir],
        ...['--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      ],
      { stdio: 'ignore' },
    );
    await waitUntil(async () => {
      try {
        return (await redisCli(redisPort, ['ping'])).trim() === 'PONG';
      } catch {
        return false;
      }
    }, `redis-server on ${redisPort}`);
    const pki = await createTestPki(join(dir, 'pki'));
    const db = await pki.workload('redis');
    const app = await pki.workload('app');
    const credentials = (w: typeof db) => [
      '--cert',
      w.certFile,
      '--key',
      w.keyFile,
      '--bundle',
      w.bundleFile,
    ];
    const common = ['--detect-timeout', `${DETECT_TIMEOUT_MS}ms`, '--admin-listen', '127.0.0.1:0'];
    const opaqueUpstream = await freePort();
    const opaquePorts = ['--opaque-ports', `${redisPort},${opaqueUpstream}`];
    const [strictServer, opaqueServer] = await Promise.all([
      startSidecar([
        ...credentials(db),
        ...['--inbound', `127.0.0.1:0=${redisPort}`, '--mode', 'STRICT', '--opaque-ports', '1'],
        ...common,
      ]),
      startSidecar([
        ...credentials(db),
        ...['--inbound', `127.0.0.1:0=${redisPort}`, '--mode', 'PERMISSIVE', ...opaquePorts],
        ...common,
      ]),
    ]);
    const [strictClient, opaqueClient] = await Promise.all([
      startSidecar([
        ...credentials(app),
        ...['--upstream', `127.0.0.1:0=${db.spiffeId}@127.0.0.1:${strictServer.inbound[0]!.port}`],
        ...['--opaque-ports', '1', ...common],
      ]),
      startSidecar([
        ...credentials(app),
        ...[
          '--upstream',
          `127.0.0.1:${opaqueUpstream}=${db.spiffeId}@127.0.0.1:${opaqueServer.inbound[0]!.port}`,
        ],
        ...opaquePorts,
        ...common,
      ]),
    ]);
    strict = { server: strictServer, client: strictClient, upstream: strictClient.outbound[0]!.port };
    opaque = { server: opaqueServer, client: opaqueClient, upstream: opaqueUpstream };
    await Promise.all([strictServer, opaqueServer, strictClient, opaqueClient].map((p) => p.untilReady()));
  });

  after(async () => {
    // Left running, a sidecar keeps this file's process alive, and the whole run waits on it.
    await Promise.all(started.map((sidecar) => sidecar.stop()));
    if (redis && redis.exitCode === null) {
      const exited = new Promise((resolve) => redis.once('exit', resolve));
      redis.kill('SIGTERM');
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('redis-cli PING over mTLS through both pairs, the server proxy naming the client', async () => {
    for (const pair of [strict, opaque]) {
      assert.equal((await redisCli(pair.upstream, ['ping'])).trim(), 'PONG');
      const metrics = await pair.server.metrics();
      assert.ok(
        metricValue(metrics, 'mutual_inbound_connections_total', {
          tls: 'true',
          client_id: 'spiffe://cluster.local/ns/demo/sa/app',
        }) >= 1,
        metrics,
      );
    }
  });

  test('a 5 MB value goes in through one pair and comes back whole through the other', async () => {
    const value = randomBytes(3_750_000).toString('base64');
    assert.equal((await redisCli(strict.upstream, ['-x', 'set', 'big'], Buffer.from(value))).trim(), 'OK');
    const got = await redisCli(opaque.upstream, ['get', 'big']);
    assert.equal(got.length, value.length + 1);
    assert.equal(sha(got.slice(0, -1)), sha(value));
  });

  test('SUBSCRIBE through one pair receives what PUBLISH sends through the other', async () => {
    const subscriber = spawn('redis-cli', [
      '-h',
      '127.0.0.1',
      '-p',
      String(strict.upstream),
      'subscribe',
      'news',
    ]);
    let output = '';
    subscriber.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      await waitUntil(async () => output.includes('subscribe\nnews\n1'), 'the subscription');
      const message = `hello-${randomBytes(200_000).toString('hex')}`;
      const published = await redisCli(opaque.upstream, ['-x', 'publish', 'news'], Buffer.from(message));
      assert.equal(published.trim(), '1');
      await waitUntil(async () => output.includes(message), 'the published message');
    } finally {
      subscriber.kill();
    }
  });

  test('redis-benchmark: 2000 requests each of SET and GET, 50 clients, no error', async () => {
    const { stdout, stderr } = await run(
      'redis-benchmark',
      ['-h', '127.0.0.1', '-p', String(strict.upstream), '-n', '2000', '-c', '50', '-q', '-t', 'set,get'],
      { timeout: 30_000 },
    );
    const rates = [...stdout.matchAll(/(SET|GET): ([\d.]+) requests per second/g)];
    assert.deepEqual(
      rates.map((match) => match[1]),
      ['SET', 'GET'],
      stdout + stderr,
    );
    assert.doesNotMatch(stdout + stderr, /error/i);
  });

  test('a client silent past the detection timeout, then PING: answered', async () => {
    const answers = await Promise.all(
      [strict, opaque].map((pair) =>
        conversation(pair.upstream, async (socket) => {
          await sleep(DETECT_TIMEOUT_MS + 500);
          socket.write('PING\r\n');
          await sleep(300);
          socket.write('QUIT\r\n');
        }),
      ),
    );
    for (const { data } of answers) assert.equal(data, '+PONG\r\n+OK\r\n');
  });

  test('the server closes first (idle timeout): the client sees its FIN promptly', async () => {
    await redisCli(redisPort, ['config', 'set', 'timeout', '1']);
    try {
      const { data, endMs } = await conversation(strict.upstream, async (socket) => {
        socket.write('PING\r\n');
      });
      assert.equal(data, '+PONG\r\n');
      assert.ok(endMs < 4_000, `FIN after ${endMs} ms`);
    } finally {
      await redisCli(redisPort, ['config', 'set', 'timeout', '0']);
    }
    // Both sidecars let go of it.
    for (const proxy of [strict.client, strict.server]) {
      await waitUntil(async () => {
        const metrics = await proxy.metrics();
        return (
          metricValue(metrics, 'mutual_inbound_connections_open') +
            metricValue(metrics, 'mutual_outbound_connections_open') ===
          0
        );
      }, 'no open connection left');
    }
  });

  test('a client that half-closes after its command still gets the answer', async () => {
    for (const pair of [strict, opaque]) {
      const { data } = await conversation(pair.upstream, async (socket) => {
        socket.end('*1\r\n$4\r\nPING\r\n');
      });
      assert.equal(data, '+PONG\r\n');
    }
  });

  test('plaintext straight at the inbound: refused under STRICT, served under PERMISSIVE', async () => {
    await assert.rejects(redisCli(strict.server.inbound[0]!.port, ['ping']));
    assert.ok(
      metricValue(await strict.server.metrics(), 'mutual_inbound_refused_total', {
        reason: 'plaintext_strict',
      }) >= 1,
    );
    assert.equal((await redisCli(opaque.server.inbound[0]!.port, ['ping'])).trim(), 'PONG');
    assert.ok(
      metricValue(await opaque.server.metrics(), 'mutual_inbound_connections_total', {
        tls: 'no_identity',
      }) >= 1,
    );
  });
});
