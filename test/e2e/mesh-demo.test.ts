// The demo as a user runs it: `mutual up` on examples/demo in loopback mode. Every sidecar is
// ready, the destination service answers for each meshed service, web's answer comes through
// emoji and voting over mTLS, `check` is green; then an expired issuer and a skewed clock
// (injected), a plaintext client and a stopped sidecar each turn `check` red with the right
// message; `mutual down` leaves no process behind.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { runCli } from '../../src/cli/index.ts';
import { isRunning, type MeshRuntime } from '../../src/mesh/index.ts';
import { createTestPki } from '../../src/testing/mesh-pki.ts';
import { type MeshUp, repoRoot, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp;
let runtime: MeshRuntime;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-demo-'));
  up = await startMeshUp(['-f', 'examples/demo/mesh.yaml', '--state-dir', join(dir, 'state')]);
  assert.match(up.output(), /The mesh is up: 4 services, every sidecar ready/, up.output());
  runtime = JSON.parse(await readFile(join(dir, 'state', 'runtime.json'), 'utf8')) as MeshRuntime;
});

after(async () => {
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

const mutual = (...args: string[]) => runMutual([...args, '--state-dir', join(dir, 'state')]);
const service = (name: string) => runtime.services.find((candidate) => candidate.name === name)!;

/** `mutual check` in-process with a clock that is `offsetMs` ahead: skew and expiry, injected. */
async function checkAt(offsetMs: number) {
  let stdout = '';
  const code = await runCli(['check', '-o', 'json', '--state-dir', join(dir, 'state')], {
    clock: { now: () => Date.now() + offsetMs },
    cwd: repoRoot(),
    isColor: false,
    write: (text) => {
      stdout += text;
    },
    writeError: (text) => {
      stdout += text;
    },
    setExitCode: () => {},
    untilShutdown: () => new Promise(() => {}),
  });
  return { code, report: JSON.parse(stdout) as { checks: Array<Record<string, any>> } };
}

const failed = (report: { checks: Array<Record<string, any>> }) =>
  report.checks
    .filter((check) => check.status === 'fail' && check.severity === 'error')
    .map((c) => c.description);

test('up prints every step and where to look', () => {
  assert.match(up.output(), /✓ CA\s+created/);
  assert.match(up.output(), /✓ identity\s+identity service https:\/\/127\.0\.0\.1:\d+ ready/);
  assert.match(
    up.output(),
    /✓ destination\s+destination service https:\/\/127\.0\.0\.1:\d+ ready, answering for 3 meshed addresses/,
  );
  for (const name of ['web', 'emoji', 'voting', 'vote-bot']) {
    assert.match(
      up.output(),
      new RegExp(`✓ ${name}\\s+spiffe://cluster.local/ns/emojivoto/sa/${name} ready`),
    );
  }
  assert.match(up.output(), /npx mutual edges --state-dir/);
  // The commands to try next, their explanations in one column whatever the service's name.
  const lookAround = up
    .output()
    .split('Look around (in another terminal):\n')[1]!
    .split('\n\n')[0]!
    .split('\n');
  assert.equal(lookAround.length, 5, up.output());
  const columns = lookAround.map((line) => line.match(/^ {2}\S.*?\S {2,}(?=\S)/)?.[0].length);
  assert.equal(new Set(columns).size, 1, up.output());
  assert.ok(columns[0], up.output());
  // Where a peer (or openssl s_client) reaches each sidecar, and its admin port.
  for (const name of ['web', 'emoji', 'voting']) {
    const { ports, adminUrl } = service(name);
    assert.ok(
      up.output().includes(`mTLS in 127.0.0.1:${ports[0]!.inboundPort}; admin ${adminUrl}`),
      up.output(),
    );
  }
  assert.ok(up.output().includes(`no inbound port; admin ${service('vote-bot').adminUrl}`), up.output());
});

test('web answers with data from emoji and voting, carried by the sidecars', async () => {
  const web = `http://127.0.0.1:${service('web').ports[0]!.appPort}`;
  const list = (await (await fetch(`${web}/api/list`)).json()) as Array<{ shortcode: string }>;
  assert.ok(list.some((emoji) => emoji.shortcode === ':joy:'));
  const vote = await fetch(`${web}/api/vote?shortcode=:joy:`);
  assert.equal(vote.status, 200, await vote.clone().text());
  assert.equal(((await vote.json()) as { shortcode: string }).shortcode, ':joy:');
  const page = await (await fetch(`${web}/`)).text();
  assert.match(page, /Vote for your favourite emoji/);
});

test('token files and the CA keys are readable by their owner only', async () => {
  const token = await stat(join(dir, 'state', 'tokens', 'web.token'));
  assert.equal(token.mode & 0o777, 0o600);
  const key = await stat(join(dir, 'state', 'ca', 'issuer.key'));
  assert.equal(key.mode & 0o777, 0o600);
});

test('identity shows the sidecar chain, verified, with time to renewal', async () => {
  const short = await mutual('identity', 'web');
  assert.equal(short.code, 0, short.stderr);
  assert.match(short.stdout, /^web {2}spiffe:\/\/cluster\.local\/ns\/emojivoto\/sa\/web/);
  assert.match(short.stdout, /verified\s+chains to the mesh's trust bundle/);
  assert.match(short.stdout, /renews\s+\S+ \(in \d+h \d+m\)/);
  const json = await mutual('identity', 'show', 'voting', '-o', 'json');
  const view = JSON.parse(json.stdout);
  assert.equal(view.spiffeId, 'spiffe://cluster.local/ns/emojivoto/sa/voting');
  assert.equal(view.verification.ok, true);
  assert.equal(view.chain.length, 2);
});

test('edges: web → emoji and web → voting are mTLS with both identities; vote-bot is denied at voting', async () => {
  // vote-bot tries voting directly every fifth round (about 5 s); wait for the denial to show.
  let edges: Array<Record<string, any>> = [];
  for (let attempt = 0; attempt < 100; attempt++) {
    const result = await mutual('edges', '-o', 'json');
    assert.equal(result.code, 0, result.stderr);
    edges = JSON.parse(result.stdout).edges;
    if (edges.some((edge) => edge.source === 'vote-bot' && edge.destination === 'voting' && edge.denied > 0))
      break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const find = (source: string, destination: string) =>
    edges.find((edge) => edge.source === source && edge.destination === destination && edge.isSecured);
  for (const [source, destination] of [
    ['web', 'emoji'],
    ['web', 'voting'],
    ['vote-bot', 'web'],
  ] as const) {
    const edge = find(source, destination);
    assert.ok(edge, `${source} → ${destination} in ${JSON.stringify(edges)}`);
    assert.equal(edge.clientId, `spiffe://cluster.local/ns/emojivoto/sa/${source}`);
    assert.equal(edge.serverId, `spiffe://cluster.local/ns/emojivoto/sa/${destination}`);
    assert.ok(edge.requests > 0);
  }
  assert.equal(find('web', 'voting')!.denied, 0);
  assert.ok(find('vote-bot', 'voting')!.denied > 0, 'the AuthorizationPolicy lets only web call voting');
  const table = await mutual('edges');
  assert.match(table.stdout, /^SOURCE\s+DESTINATION\s+CLIENT_ID\s+SERVER_ID\s+SECURED/);
  assert.match(table.stdout, /web\s+emoji:\d+\s+ns\/emojivoto\/sa\/web\s+ns\/emojivoto\/sa\/emoji\s+√/);
});

test('the destination service runs beside the identity service and answers for emoji with its identity', async () => {
  const destination = runtime.destination!;
  assert.ok(destination, 'runtime.json records the destination service');
  assert.equal(isRunning(destination), true);
  assert.equal(destination.serverId, 'spiffe://cluster.local/ns/mutual-system/sa/destination');
  assert.equal((await fetch(`${destination.adminUrl}/ready`)).status, 200);
  // What it answers from: emoji at its sidecar's inbound port on 127.0.0.1, as web's sidecar calls it.
  const table = await readFile(destination.tableFile, 'utf8');
  assert.match(
    table,
    new RegExp(
      `serverId: spiffe://cluster.local/ns/emojivoto/sa/emoji\\n\\s+names:\\n\\s+- emoji\\n[^]*?port: ${service('emoji').ports[0]!.inboundPort}\\n`,
    ),
  );
  // check asks it over mTLS for every meshed address; emoji's must come back meshed as emoji.
  const check = await checkAt(0);
  const answers = check.report.checks.find(
    (entry) =>
      entry.description === 'destination service answers for every meshed service with its SPIFFE ID',
  )!;
  assert.deepEqual(
    answers.results.map((result: Record<string, string>) => [result.subject, result.status]),
    [
      ['web', 'ok'],
      ['emoji', 'ok'],
      ['voting', 'ok'],
    ],
  );
  const logs = await mutual('logs', 'destination');
  assert.match(logs.stdout, /"msg":"destination table loaded".*"entries":3/);
  // No service named: the ones there are, and a command to copy.
  const none = await mutual('logs');
  assert.equal(none.code, 2);
  assert.match(
    none.stderr,
    /MUTUAL_CLI_USAGE\]: give a service: there are logs for (?=.*\bweb\b)(?=.*\bidentity\b).* \(e\.g\. `mutual logs \S+ --proxy --state-dir \S+`\)/,
  );
});

test('check is green on the running demo', async () => {
  const result = await mutual('check');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /√ sidecar is ready \(web, emoji, voting, vote-bot\)/);
  assert.match(result.stdout, /Status check results are √/);
});

test('an expired issuer and a skewed clock (injected) turn check red', async () => {
  const expired = await checkAt(400 * 86_400_000);
  assert.equal(expired.code, 1);
  assert.ok(
    failed(expired.report).includes('issuer is within its validity period'),
    failed(expired.report).join(),
  );
  const skewed = await checkAt(-5 * 60_000);
  assert.equal(skewed.code, 1);
  const clock = skewed.report.checks.find(
    (check) => check.description === "identity service's clock agrees with this machine's",
  );
  assert.equal(clock?.status, 'fail');
  assert.match(clock!.results[0].message, /ahead of this machine's \(allowed: 20s\)/);
  assert.match(clock!.results[0].details.join('\n'), /this machine: /);
});

test('a plaintext client is refused and turns check red', async () => {
  const inbound = service('voting').ports[0]!.inboundPort!;
  const socket = connect(inbound, '127.0.0.1');
  await once(socket, 'connect');
  socket.end('POST /vote?shortcode=:joy: HTTP/1.1\r\nhost: voting\r\n\r\n');
  let answer = '';
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString();
  });
  await once(socket, 'close');
  assert.doesNotMatch(answer, /"votes"/, 'STRICT must not pass plain text to the app');
  const result = await mutual('check');
  assert.equal(result.code, 1);
  assert.match(
    result.stdout,
    /× no plaintext traffic into meshed workloads\n.*\n\s+unknown → voting:\d+: 1 connection.*\(refused: /,
  );
});

test('clients refused at the handshake (another CA, no certificate) are a check warning, by reason', async () => {
  const foreign = await (await createTestPki(join(dir, 'foreign-pki'))).workload('web', { ns: 'emojivoto' });
  const inbound = service('web').ports[0]!.inboundPort!;
  const handshake = async (options: { cert?: string; key?: string }) => {
    const socket = tlsConnect({ port: inbound, host: '127.0.0.1', rejectUnauthorized: false, ...options });
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nhost: web\r\n\r\n');
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    // Not once(): a client with no certificate gets alert 116, an 'error' that once() would throw.
    await new Promise((resolve) => socket.once('close', resolve));
    return answer;
  };
  const [certPem, keyPem] = [
    await readFile(foreign.certFile, 'utf8'),
    await readFile(foreign.keyFile, 'utf8'),
  ];
  assert.equal(await handshake({ cert: certPem, key: keyPem }), '', 'another CA must not reach the app');
  assert.equal(await handshake({}), '', 'no client certificate must not reach the app');
  const result = await mutual('check');
  assert.match(
    result.stdout,
    /‼ clients complete the mTLS handshake\n\s+web: refused 2 TLS handshakes \(1 no_client_certificate, 1 unknown_authority\)\n[\s\S]*?fix: find the client in the sidecar log \(`mutual logs web --proxy --state-dir /,
    result.stdout,
  );
  // edges says so too (they are no edge: no identity, no port), and its JSON counts them.
  const table = await mutual('edges');
  assert.equal(table.code, 0, table.stderr);
  assert.match(
    table.stdout,
    /^! web's sidecar refused 2 TLS handshakes since it started \(1 no_client_certificate, 1 unknown_authority\); a refused client has no identity, so it is no edge\. `mutual logs web --proxy --state-dir \S+` names the first client of each reason \(then a count every 10 s\)\.$/m,
    table.stdout,
  );
  const json = JSON.parse((await mutual('edges', '-o', 'json')).stdout);
  assert.deepEqual(
    json.refusedHandshakes.find((entry: { service: string }) => entry.service === 'web'),
    { service: 'web', reasons: { no_client_certificate: 1, unknown_authority: 1 } },
  );
});

test('a wedged sidecar turns check red, naming it', async () => {
  // Stopped, not killed: `up` kills a sidecar that does not answer /live for 30 s and starts it
  // again (mesh-liveness.test.ts); check runs well within that window, and says it will happen.
  const pid = service('emoji').proxy.pid;
  process.kill(pid, 'SIGSTOP');
  try {
    const result = await mutual('check');
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /× sidecar is ready\n\s+emoji: the sidecar does not answer at http:\/\/127\.0\.0\.1:\d+.*its process \(pid \d+\) is stopped .*`kill -CONT \d+` resumes it, or `mutual up` kills it and starts it again once it has not answered \/live for 30 s \(liveness\)\n/,
    );
    assert.ok(
      result.stdout.includes(`\`mutual logs emoji --proxy --state-dir ${join(dir, 'state')}\``),
      result.stdout,
    );
  } finally {
    process.kill(pid, 'SIGCONT');
  }
});

test('down stops every process and forgets the runtime', async () => {
  const result = await mutual('down');
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /Stopped the mesh/);
  if (up.child.exitCode === null && up.child.signalCode === null) await once(up.child, 'exit');
  assert.match(up.output(), /SIGTERM: stopping the mesh\nStopped every process of the mesh\./);
  const recorded = [
    runtime.identity,
    runtime.destination!,
    ...runtime.services.flatMap((s) => [s.app, s.proxy]),
  ];
  for (const process of recorded)
    assert.equal(isRunning(process), false, `${process.argv.join(' ')} still runs`);
  await assert.rejects(stat(join(dir, 'state', 'runtime.json')), { code: 'ENOENT' });
  await assert.rejects(stat(join(dir, 'state', 'destinations.yaml')), { code: 'ENOENT' });
  const again = await mutual('check');
  assert.match(again.stdout, /× a mesh is running from the state directory/);
});
