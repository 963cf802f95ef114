// gRPC on Debian's python3-grpcio (gRPC C-core, its own HTTP/2 stack: BDP and keepalive PINGs,
// GOAWAY at max_connection_age) on both ends of a sidecar pair: python client → client proxy's
// upstream → mTLS → STRICT server proxy → python server. The apps are
// test/interop/fixtures/grpc_app.py (raw-bytes methods, no protoc); its client prints one JSON
// line per case. Needs the Debian package python3-grpcio (/usr/bin/python3, not a pyenv one).
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const PYTHON = '/usr/bin/python3';
const hasGrpc = (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import grpc'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();
const skip = hasGrpc ? false : `needs ${PYTHON} with grpc (apt-get install python3-grpcio)`;

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const APP = join(repoRoot(), 'test', 'interop', 'fixtures', 'grpc_app.py');
const EMOJI_HOST = 'emoji.demo.svc';

/** A python gRPC server: its port, the lines it printed after it, and a stop that waits for its exit. */
interface PythonServer {
  readonly port: number;
  readonly events: string[];
  stop(): Promise<void>;
}

async function startServer(port: number, options: Record<string, number> = {}): Promise<PythonServer> {
  const args = [APP, 'serve', String(port), ...Object.entries(options).map(([k, v]) => `${k}=${v}`)];
  const child = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const bound = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line);
        const match = /^port (\d+)$/.exec(line);
        if (match) resolve(Number(match[1]));
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    exited.then(() => reject(new Error(`the python gRPC server exited:\n${output}`)));
  });
  return {
    port: await bound,
    events: lines,
    async stop() {
      child.stdin.end(); // it stops at the end of its input
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A python client running `cases` in order on one channel; `onLine` sees each JSON line as it comes. */
function runClient(
  target: string,
  cases: string[],
  onLine: (line: Record<string, unknown>, client: ChildProcessWithoutNullStreams) => void = () => {},
  env: NodeJS.ProcessEnv = {},
): Promise<Map<string, unknown>> {
  const child = spawn(PYTHON, [APP, 'call', target, ...cases], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const results = new Map<string, unknown>();
  let stderr = '';
  let rest = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop()!;
    for (const text of lines) {
      const line = JSON.parse(text) as Record<string, unknown>;
      results.set(String(line.case), 'error' in line ? line : line.result);
      onLine(line, child);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(results);
      else reject(new Error(`the python gRPC client exited ${code}:\n${stderr}`));
    });
  });
}

describe('gRPC C-core (python3-grpcio) through a pair of sidecars', { skip }, () => {
  let dir: string;
  const proxies: ProxyProcess[] = [];
  const servers: PythonServer[] = [];
  let app: PythonServer;
  let target = '';
  let agedTarget = '';
  let restartTarget = '';
  let clientId: string;
  let webFiles: WorkloadFiles;
  let inboundTarget = '';
  let results: Promise<Map<string, unknown>>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-grpc-python-'));
    const pki = await createTestPki(join(dir, 'pki'));
    // emoji's DNS name is for the client that checks host names as gRPC does (the direct call).
    const [emoji, web] = await Promise.all([
      pki.workload('emoji', { dnsNames: [EMOJI_HOST] }),
      pki.workload('web'),
    ]);
    clientId = web!.spiffeId;
    webFiles = web!;
    // Pings the proxy's session every 200 ms, as a server with keepalive does.
    app = await startServer(0, { 'grpc.keepalive_time_ms': 200, 'grpc.keepalive_permit_without_calls': 1 });
    // Sends GOAWAY 300 ms into each connection (±10%), while calls wait behind its 4-stream limit.
    const aged = await startServer(0, {
      'grpc.max_concurrent_streams': 4,
      'grpc.max_connection_age_ms': 300,
      'grpc.max_connection_age_grace_ms': 5000,
    });
    const restarted = await startServer(0);
    servers.push(app, aged, restarted);
    const server = await startProxyProcess([
      ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
      ...servers.flatMap((s) => ['--inbound', `127.0.0.1:0=${s.port}`]),
      ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(server);
    inboundTarget = `127.0.0.1:${server.inbound[0]!.port}`;
    const client = await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...server.inbound.flatMap(({ port }) => [
        '--upstream',
        `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${port}`,
      ]),
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(client);
    await Promise.all(proxies.map((proxy) => proxy.untilReady()));
    [target, agedTarget, restartTarget] = client.outbound.map(({ port }) => `127.0.0.1:${port}`) as [
      string,
      string,
      string,
    ];
    // One client process for every case that needs nothing in between (a python start is ~0.3 s).
    results = runClient(target, [
      ...['unary', 'metadata', 'server-stream', 'large', 'client-stream', 'bidi'],
      ...['deadline', 'cancel', 'statuses', 'gzip', 'concurrent', 'keepalive'],
    ]);
    results.catch(() => {});
  });

  after(async () => {
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    await Promise.all(servers.map((server) => server.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const result = async (name: string) => {
    const value = (await results).get(name);
    assert.ok(value, `no result for ${name}`);
    return value as Record<string, unknown>;
  };

  test('unary: the answer, initial and trailing metadata (binary -bin values too) come back intact', async () => {
    assert.deepEqual(await result('unary'), {
      response: 'hi',
      initial: 'hello',
      initialBin: '00ff01',
      trailing: 'bye',
      trailingBin: 'fe00',
    });
  });

  test('request metadata reaches the server intact; x-mutual-client-id is the verified peer, not the forged one', async () => {
    const seen = await result('metadata');
    assert.equal(seen['x-custom'], 'value 1');
    assert.equal(seen['x-custom-bin'], '0001ff');
    assert.equal(seen['x-mutual-client-id'], clientId);
    assert.match(String(seen['user-agent']), /grpc-python/);
  });

  test('streams: 1000 small messages down, 4 × 8 MB down and 3 × 8 MB up, 500 up, 200 ping-pongs', async () => {
    assert.deepEqual(await result('server-stream'), { count: 1000, bytes: 100_000 });
    assert.deepEqual(await result('large'), { count: 4, intact: true, upload: '3,25165824' });
    assert.deepEqual(await result('client-stream'), { result: '500,500000' });
    assert.deepEqual(await result('bidi'), { count: 200, inOrder: true, rest: 0 });
  });

  test('an expired deadline and a cancellation end the call at the client and at the server', async () => {
    assert.deepEqual(await result('deadline'), { code: 'DEADLINE_EXCEEDED', received: true });
    assert.deepEqual(await result('cancel'), { code: 'CANCELLED' });
    // The server's handler learns of both (it stops at once, not after its 400 messages).
    const deadline = Date.now() + 5_000;
    while (
      Date.now() < deadline &&
      !['deadline', 'cancel'].every((n) => app.events.includes(`cancelled ${n}`))
    )
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(app.events.includes('cancelled deadline'), app.events.join('\n'));
    assert.ok(app.events.includes('cancelled cancel'), app.events.join('\n'));
  });

  test('every status code comes back with its details and trailing metadata', async () => {
    const statuses = await result('statuses');
    assert.equal(Object.keys(statuses).length, 16);
    for (const [name, got] of Object.entries(statuses)) {
      assert.deepEqual(
        got,
        { code: name, details: `status ${name} with détails ✨ 100%`, name: name.toLowerCase(), bin: true },
        name,
      );
    }
  });

  test('gzip-compressed messages, 500 concurrent calls on one channel, keepalive PINGs every 200 ms', async () => {
    assert.deepEqual(await result('gzip'), { intact: true, streamed: 50 });
    assert.deepEqual(await result('concurrent'), { ok: 500, errors: {} });
    // An abusive-ping GOAWAY would have failed a call after the idle stretches.
    assert.deepEqual(await result('keepalive'), { ok: 6 });
  });

  test('a gRPC client holding its own SVID calls the inbound directly: ALPN says h2, the app sees its ID', async () => {
    // gRPC C-core gives up on a TLS server that selects no ALPN protocol: before the inbound
    // answered ALPN, this channel never became ready (UNAVAILABLE).
    const tls = [webFiles.bundleFile, webFiles.certFile, webFiles.keyFile, EMOJI_HOST].join(',');
    const got = await runClient(inboundTarget, ['unary', 'metadata', 'server-stream'], () => {}, {
      MUTUAL_GRPC_TLS: tls,
    });
    assert.deepEqual(got.get('server-stream'), { count: 1000, bytes: 100_000 });
    assert.equal(
      (got.get('unary') as Record<string, unknown>)?.response,
      'hi',
      JSON.stringify(got.get('unary')),
    );
    assert.equal((got.get('metadata') as Record<string, unknown>)?.['x-mutual-client-id'], clientId);
  });

  test('calls waiting behind the server’s stream limit when its max_connection_age GOAWAY comes are sent again', async () => {
    // The server's GOAWAY made Node refuse (REFUSED_STREAM) every stream still queued on the
    // proxy's session to it; the client got UNAVAILABLE for about half of them.
    const got: unknown[] = [];
    await runClient(agedTarget, ['slow-concurrent', 'slow-concurrent'], (line) =>
      got.push(line.result ?? line),
    );
    assert.deepEqual(got, [
      { ok: 40, errors: {} },
      { ok: 40, errors: {} },
    ]);
  });

  test('the same channel works again once the server app has restarted; UNAVAILABLE while it is down', async () => {
    const port = servers[2]!.port;
    const answers: unknown[] = [];
    let waits = 0;
    const cases = ['unary', 'wait-line', 'unavailable', 'wait-line', 'unary'];
    const got = await runClient(restartTarget, cases, (line, client) => {
      if (line.case === 'unary') answers.push((line.result as Record<string, unknown>)?.response ?? line);
      if (line.case !== 'wait-line') return;
      // First stop the app, then start it again on the same port.
      const step = async () => {
        if (waits++ === 0) await servers[2]!.stop();
        else servers[2] = await startServer(port);
        client.stdin.write('\n');
      };
      void step();
    });
    assert.deepEqual(got.get('unavailable'), { code: 'UNAVAILABLE' });
    assert.deepEqual(answers, ['hi', 'hi']);
  });
});
