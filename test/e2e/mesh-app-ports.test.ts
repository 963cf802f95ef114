// `mutual up` with apps that do not listen where they are told, as a user's own apps do: one that
// hard-codes a port someone else holds, one that ignores $PORT, one on 0.0.0.0, a script that is
// not executable. Each is named with what to do; none restarts the mesh for nothing.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
const states: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-app-ports-'));
});
after(async () => {
  for (const state of states) await runMutual(['down', '--state-dir', state]);
  await rm(dir, { recursive: true, force: true });
});

/** A one-service mesh.yaml whose app is `node -e SCRIPT`; returns [file, state dir]. */
async function meshWithApp(name: string, script: string, extra = ''): Promise<[string, string]> {
  const file = join(dir, `${name}.yaml`);
  const command = extra || `[node, -e, ${JSON.stringify(script)}]`;
  await writeFile(file, `services:\n  - name: ${name}\n    command: ${command}\n    ports: [8080]\n`);
  const state = join(dir, `state-${name}`);
  states.push(state);
  return [file, state];
}

test('an app that hard-codes a port another process holds: one attempt, and "make it listen on $PORT"', async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const held = (holder.address() as { port: number }).port;
  try {
    const [file, state] = await meshWithApp(
      'fixed',
      `require('node:net').createServer().listen(${held}, '127.0.0.1')`,
    );
    const started = Date.now();
    const up = await runMutual(['up', '-f', file, '--state-dir', state], { timeoutMs: 60_000 });
    assert.equal(up.code, 1, up.stdout + up.stderr);
    // Before: taken for a race on the mesh's own ports, the whole mesh started three times.
    assert.doesNotMatch(up.stdout, /starting again on new ports/, up.stdout);
    assert.match(
      up.stderr,
      /the app fixed .* exited \(code 1\): it could not bind a port \(address already in use\), yet \$PORT=\d+ it was given is free, .*make it listen on \$PORT/,
    );
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
  } finally {
    holder.close();
  }
});

test('an app that ignores $PORT: where it listens instead, at once and in the timeout error', async () => {
  const [file, state] = await meshWithApp(
    'elsewhere',
    "require('node:net').createServer().listen(0, '127.0.0.1')",
  );
  const up = await runMutual(['up', '-f', file, '--state-dir', state, '--timeout', '5s'], {
    timeoutMs: 60_000,
  });
  assert.equal(up.code, 1, up.stdout + up.stderr);
  assert.match(
    up.stderr,
    /! the app elsewhere listens on 127\.0\.0\.1:\d+, not on \$PORT=\d+ it was given for port 8080/,
  );
  assert.match(
    up.stderr,
    /was not ready within --timeout 5s, for every process together \(last check: nothing accepts connections on 127\.0\.0\.1:\d+ or \[::1\]:\d+; the app listens on 127\.0\.0\.1:\d+ instead: make it listen on \$PORT/,
  );
});

test('an app on 0.0.0.0: up warns that it is reachable past its sidecar', async () => {
  const [file, state] = await meshWithApp(
    'wide',
    "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '0.0.0.0')",
  );
  const up = await startMeshUp(['-f', file, '--state-dir', state]);
  try {
    assert.match(up.output(), /The mesh is up: 1 service, every sidecar ready/, up.output());
    // A one-service mesh read "Starting 1 services", "1 join tokens", "1 meshed addresses".
    assert.match(up.output(), /Starting 1 service from .*\n.*\n\s+✓ tokens\s+1 join token in /, up.output());
    assert.match(up.output(), /answering for 1 meshed address \(/, up.output());
    const check = await runMutual(['check', '--state-dir', state]);
    assert.match(check.stdout, /√ a mesh is running from the state directory: 1 service from /, check.stdout);
    assert.match(
      up.output(),
      /! the app wide listens on 0\.0\.0\.0:\d+, every interface: other machines reach it in plain text, past its sidecar's mTLS and policy/,
    );
  } finally {
    await up.stop();
  }
});

test('an app with two ports that listens on $PORT only: the error names $PORT_9090, the variable it ignored', async () => {
  // Before: "port 9090, told to listen on $PORT=N", though $PORT held the first port (where it
  // listened) and N was in $PORT_9090.
  const [file, state] = await meshWithApp(
    'two',
    "require('node:net').createServer().listen(Number(process.env.PORT), '127.0.0.1')",
  );
  await writeFile(file, (await readFile(file, 'utf8')).replace('ports: [8080]', 'ports: [8080, 9090]'));
  const up = await runMutual(['up', '-f', file, '--state-dir', state, '--timeout', '3s'], {
    timeoutMs: 60_000,
  });
  assert.equal(up.code, 1, up.stdout + up.stderr);
  const told = /the app two \(port 9090, told to listen on \$PORT_9090=(\d+)\) was not ready/.exec(up.stderr);
  assert.ok(told, up.stderr);
  assert.match(up.stderr, new RegExp(`nothing accepts connections on 127\\.0\\.0\\.1:${told[1]}`));
});

test('a script that is not executable, a policy with a typo: said before anything starts', async () => {
  await writeFile(join(dir, 'app.sh'), '#!/bin/sh\nexit 0\n');
  await chmod(join(dir, 'app.sh'), 0o644);
  const [file, state] = await meshWithApp('script', '', '[./app.sh]');
  const up = await runMutual(['up', '-f', file, '--state-dir', state], { timeoutMs: 60_000 });
  assert.equal(up.code, 1, up.stdout + up.stderr);
  assert.match(
    up.stderr,
    /\.\/app\.sh is not executable; `chmod \+x \.\/app\.sh`, or run it with its interpreter/,
  );
  assert.doesNotMatch(up.stdout, /✓ CA/, up.stdout);
  // A typo in a policy file: before, every sidecar started and exited on it, the error buried in
  // 'the sidecar of … exited' after its whole command line.
  await mkdir(join(dir, 'policies'));
  await writeFile(
    join(dir, 'policies', 'authz.yaml'),
    'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: a, namespace: default }\nspec:\n  rules:\n    - from:\n        - source: { principal: [x] }\n',
  );
  const [policyFile, policyState] = await meshWithApp('typo', 'setInterval(() => {}, 1000)');
  await writeFile(policyFile, `policyDir: policies\n${await readFile(policyFile, 'utf8')}`);
  const typo = await runMutual(['up', '-f', policyFile, '--state-dir', policyState], { timeoutMs: 60_000 });
  assert.equal(typo.code, 1, typo.stdout + typo.stderr);
  assert.match(
    typo.stderr,
    /error\[MUTUAL_POLICY_INVALID\]: \S*authz\.yaml:7:\d+: .*unknown field "principal"/,
  );
  assert.doesNotMatch(typo.stdout + typo.stderr, /sidecar of|✓ CA/);
});

test('a loopback mesh enforces port-level policy on the ports mesh.yaml declares', async () => {
  // Before: sidecars matched ports against each app's $PORT, so up refused such policies (and
  // before that, a PERMISSIVE 8080 stayed STRICT and a DENY on 9090 denied nothing).
  const policies = join(dir, 'port-policies');
  await mkdir(policies);
  const head = (kind: string, name: string) =>
    `apiVersion: security.istio.io/v1\nkind: ${kind}\nmetadata: { name: ${name}, namespace: default }\nspec:\n`;
  await writeFile(
    join(policies, 'strict.yaml'),
    `${head('PeerAuthentication', 'default')}  mtls: { mode: STRICT }\n`,
  );
  await writeFile(
    join(policies, 'peer.yaml'),
    `${head('PeerAuthentication', 'ports-8080')}  selector: { matchLabels: { app: ports } }\n  portLevelMtls:\n    8080: { mode: PERMISSIVE }\n`,
  );
  await writeFile(
    join(policies, 'deny.yaml'),
    `${head('AuthorizationPolicy', 'deny-9090')}  selector: { matchLabels: { app: ports } }\n  action: DENY\n  rules:\n    - to: [{ operation: { ports: ["9090"] } }]\n`,
  );
  const serve = (variable: string) =>
    `require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.${variable}), '127.0.0.1');`;
  const file = join(dir, 'ports.yaml');
  await writeFile(
    file,
    `policyDir: port-policies\nservices:\n  - name: ports\n    command: [node, -e, ${JSON.stringify(serve('PORT_8080') + serve('PORT_9090'))}]\n    ports: [8080, 9090]\n  - name: caller\n    command: [node, -e, "setInterval(() => {}, 1000)"]\n    upstreams: [{ service: ports, port: 8080, env: P8080 }, { service: ports, port: 9090, env: P9090 }]\n`,
  );
  const state = join(dir, 'state-ports');
  states.push(state);
  const up = await startMeshUp(['-f', file, '--state-dir', state]);
  try {
    assert.match(up.output(), /The mesh is up/, up.output());
    const runtime = JSON.parse(await readFile(join(state, 'runtime.json'), 'utf8')) as {
      services: Array<{
        name: string;
        ports: Array<{ port: number; inboundPort: number }>;
        upstreams: Array<{ port: number; localAddress: string }>;
      }>;
    };
    const [ports, caller] = ['ports', 'caller'].map((name) => runtime.services.find((s) => s.name === name)!);
    const plain = (port: number) =>
      fetch(`http://127.0.0.1:${ports!.ports.find((p) => p.port === port)!.inboundPort}/`).then(
        (response) => response.status,
        (error: Error) => error.message,
      );
    const viaMesh = async (port: number) =>
      (await fetch(`http://${caller!.upstreams.find((u) => u.port === port)!.localAddress}/`)).status;
    assert.equal(await plain(8080), 200, 'portLevelMtls 8080: PERMISSIVE takes plain text');
    assert.equal(await plain(9090), 'fetch failed', 'STRICT elsewhere');
    assert.equal(await viaMesh(8080), 200);
    assert.equal(await viaMesh(9090), 403, 'DENY ports: ["9090"]');
  } finally {
    await up.stop();
  }
});
