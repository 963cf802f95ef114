// An unreliable network, for real: two pods (network namespaces) with `mutual proxy init`'s rules
// and a sidecar each; the client app calls the server app over HTTP/1 (pooled mTLS), HTTP/2
// (one multiplexed mTLS session) and opaque TCP. Then the server pod vanishes from the wire
// (iptables DROP both ways on its link: no RST, no FIN), as a node lost to a partition does, or
// drops only SYNs. Before, every call hung: a new HTTP/1 call for the kernel's SYN retries
// (127 s), one on the pooled HTTP/2 session and one in flight for the TCP retransmissions
// (about 15 minutes), all past a 60-90 s curl timeout, with nothing logged or counted. Now each
// fails within 10-20 s (502 with its reason, a reset for opaque TCP), is logged and counted, and
// calls succeed again as soon as the partition heals, with nothing restarted.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { canUseNetns, hasCommand, type Pod, type PodNetwork } from '../../src/testing/netns.ts';
import { createClientServerPods, startPodSidecar } from '../proxy/pod-sidecar.ts';

const skip =
  canUseNetns() ??
  (hasCommand('iptables') ? undefined : 'iptables is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

// HTTP/1 on 8080 (/slow answers after 60 s), HTTP/2 prior knowledge on 8081, a TCP echo on 9000.
const APP = `
const http = require('node:http'), http2 = require('node:http2'), net = require('node:net');
http.createServer((q, s) => {
  if (q.url === '/slow') return setTimeout(() => s.end('late'), 60000);
  if (q.url !== '/stream') return s.end('ok');
  const timer = setInterval(() => s.write('x'.repeat(1024)), 100);
  s.on('close', () => clearInterval(timer));
}).listen(8080, '127.0.0.1');
const h2 = http2.createServer();
h2.on('stream', (st, h) => { st.on('error', () => {}); if (h[':path'] === '/slow') return setTimeout(() => { if (!st.destroyed) { st.respond(); st.end('late'); } }, 60000); st.respond(); st.end('ok'); });
h2.listen(8081, '127.0.0.1');
// The sidecar resets the echo's connection once its peer is gone: not a reason to exit.
net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(9000, '127.0.0.1', () => console.log('listening'));
`;

// Holds an opaque TCP connection: one echo, then waits for the connection to end and says how.
const OPAQUE_CLIENT = `
const s = require('node:net').connect(9000, process.argv[1]);
s.once('data', (d) => console.log('echo ' + d));
s.on('error', (e) => console.log('error ' + e.code));
s.on('close', () => console.log('closed'));
s.write('hi');
`;

let dir: string;
let network: PodNetwork;
let client: Pod;
let server: Pod;
/** What the client's sidecar logged. */
let clientLog = '';

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'netwalk-partition-'));
  let web: WorkloadFiles;
  let emoji: WorkloadFiles;
  ({ web, emoji, network, client, server } = await createClientServerPods({
    dir,
    prefix: 'netwalk',
    app: APP,
  }));
  // 9000 is opaque on both sides: its first bytes ('hi') could start an HTTP request line.
  await startPodSidecar(server, emoji, ['--mode', 'STRICT', '--opaque-ports', '9000']);
  await startPodSidecar(
    client,
    web,
    [
      '--outbound-strict',
      '--opaque-ports',
      '9000',
      ...[8080, 8081, 9000].flatMap((port) => [
        '--destination',
        `${server.address}:${port}=${emoji.spiffeId}`,
      ]),
    ],
    (text) => {
      clientLog += text;
    },
  );
});

after(async () => {
  await network?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** What the server pod's link does: everything, or only SYNs, dropped (`-I` on, `-D` off). */
async function drop(action: '-I' | '-D', what: 'all' | 'syn') {
  const rules =
    what === 'all'
      ? [
          ['INPUT', '!', '-i', 'lo', '-j', 'DROP'],
          ['OUTPUT', '!', '-o', 'lo', '-j', 'DROP'],
        ]
      : [['INPUT', '-p', 'tcp', '--syn', '-j', 'DROP']];
  for (const rule of rules) {
    const result = await server.exec('iptables', [action, ...rule]);
    assert.equal(result.code, 0, result.stderr);
  }
}

/** The server pod's established connections on its inbound port. */
async function inboundConnections(): Promise<number> {
  const result = await server.exec('ss', ['-tnH', 'state', 'established', '( sport = :4143 )']);
  return result.stdout.split('\n').filter((line) => line.trim()).length;
}

/** curl from the client pod; "does not hang" is curl's own 40 s limit, far above the 10-20 s expected. */
async function call(port: number, path = '/', http2 = false) {
  const result = await client.exec(
    'curl',
    [
      '-sS',
      '-m',
      '40',
      ...(http2 ? ['--http2-prior-knowledge'] : []),
      '-D',
      '-',
      '-o',
      '/dev/null',
      '-w',
      'status=%{http_code} seconds=%{time_total}\n',
      `http://${server.address}:${port}${path}`,
    ],
    { timeoutMs: 45_000 },
  );
  return { ...result, status: Number(/status=(\d+)/.exec(result.stdout)?.[1] ?? 0) };
}

async function metrics(): Promise<string> {
  return (await client.exec('curl', ['-s', 'http://127.0.0.1:4191/metrics'])).stdout;
}

test('a destination pod that vanishes: new, pooled and in-flight calls fail within seconds, and recover when it heals', {
  skip,
}, async () => {
  // Warm the HTTP/1 pool and the HTTP/2 session.
  assert.equal((await call(8080)).status, 200);
  assert.equal((await call(8081, '/', true)).status, 200);
  const inflight1 = call(8080, '/slow');
  const inflight2 = call(8081, '/slow', true);
  const opaque = client.spawn(process.execPath, ['-e', OPAQUE_CLIENT, server.address]);
  let opaqueOutput = '';
  opaque.stdout!.on('data', (chunk) => {
    opaqueOutput += chunk;
  });
  const opaqueClosed = new Promise((resolve) => opaque.once('exit', resolve));
  for (let i = 0; i < 50 && !opaqueOutput.includes('echo hi'); i++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  assert.match(opaqueOutput, /echo hi/);
  await new Promise((resolve) => setTimeout(resolve, 500)); // the /slow requests reach the app
  await drop('-I', 'all');
  try {
    const [fresh1, fresh2] = await Promise.all([call(8080), call(8081, '/', true)]);
    // HTTP/1: the pooled connection is busy with /slow, so a new one is opened, and times out.
    assert.equal(fresh1.status, 502, fresh1.stdout + fresh1.stderr);
    assert.match(fresh1.stdout, /x-mutual-proxy-error: connect_timeout/i);
    // HTTP/2: the stream went to the dead session; the unanswered keepalive PING ends it.
    assert.equal(fresh2.status, 502, fresh2.stdout + fresh2.stderr);
    // With the session gone, a new HTTP/2 call opens a connection, and times out as HTTP/1 does.
    const opaqueEnded = Promise.race([
      opaqueClosed,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`opaque: ${opaqueOutput}`)), 40_000)),
    ]);
    const [slow1, slow2, again2] = await Promise.all([
      inflight1,
      inflight2,
      call(8081, '/', true),
      opaqueEnded,
    ]);
    assert.equal(slow1.status, 502, slow1.stdout + slow1.stderr);
    assert.equal(slow2.status, 502, slow2.stdout + slow2.stderr);
    assert.match(opaqueOutput, /closed/);
    assert.equal(again2.status, 502);
    assert.match(again2.stdout, /x-mutual-proxy-error: connect_timeout/i);
  } finally {
    await drop('-D', 'all');
  }
  // Healed: calls go through again, nothing restarted.
  const healed1 = await call(8080);
  assert.equal(healed1.status, 200, healed1.stdout + healed1.stderr);
  const healed2 = await call(8081, '/', true);
  assert.equal(healed2.status, 200, healed2.stdout + healed2.stderr);
  const text = await metrics();
  assert.match(
    text,
    /mutual_outbound_refused_total\{reason="connect_timeout",destination="198\.18\.[0-9.]+:8080"\} [1-9]/,
  );
});

test('a call sent into a pooled HTTP/1 connection just after its peer vanished gets 502 within seconds', {
  skip,
}, async () => {
  // The pool holds an idle connection; the peer vanishes before keepalive probes it, and the
  // request's bytes stay unacknowledged: before the retransmission watch, curl gave up at 60 s.
  assert.equal((await call(8080)).status, 200);
  await drop('-I', 'all');
  try {
    const result = await call(8080);
    assert.equal(result.status, 502, result.stdout + result.stderr);
    assert.match(result.stdout, /x-mutual-proxy-error: upstream_failed/i);
    assert.match(
      clientLog,
      /outbound request failed: the connection to the destination broke.*retransmissions in a row/,
    );
  } finally {
    await drop('-D', 'all');
  }
  assert.equal((await call(8080)).status, 200);
});

test('a client pod that vanishes while the server streams an answer to it is let go within seconds', {
  skip,
}, async () => {
  const stream = client.exec(
    'curl',
    ['-sS', '-m', '50', '-o', '/dev/null', `http://${server.address}:8080/stream`],
    {
      timeoutMs: 55_000,
    },
  );
  while ((await inboundConnections()) === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  const rules = [
    ['INPUT', '!', '-i', 'lo', '-j', 'DROP'],
    ['OUTPUT', '!', '-o', 'lo', '-j', 'DROP'],
  ];
  for (const rule of rules) assert.equal((await client.exec('iptables', ['-I', ...rule])).code, 0);
  try {
    // The server's inbound keeps sending into the void: keepalive waits while bytes are
    // unacknowledged, so before the retransmission watch it held the connection ~15 minutes.
    let open = await inboundConnections();
    for (let i = 0; i < 40 && open > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      open = await inboundConnections();
    }
    assert.equal(open, 0, 'the server pod still holds the connection from the vanished client after 40 s');
  } finally {
    for (const rule of rules) await client.exec('iptables', ['-D', ...rule]);
  }
  await stream;
});

test('SYNs dropped: a new opaque connection is reset within seconds and counted as connect_timeout', {
  skip,
}, async () => {
  await drop('-I', 'syn');
  try {
    const result = await client.exec(
      'curl',
      ['-sS', '-m', '40', '-w', 'seconds=%{time_total}', `telnet://${server.address}:9000`],
      { input: 'x', timeoutMs: 45_000 },
    );
    // Reset (56), not curl's own timeout (28).
    assert.equal(result.code, 56, result.stderr);
  } finally {
    await drop('-D', 'syn');
  }
  assert.match(
    await metrics(),
    /mutual_outbound_refused_total\{reason="connect_timeout",destination="198\.18\.[0-9.]+:9000"\} [1-9]/,
  );
});
