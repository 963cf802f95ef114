// `mutual check`, `identity` and `edges` as a user reads them when something is broken: the fixed
// mesh of the golden tests (real CA files, tiny real admin servers, runtime.json), broken one way
// at a time. Each says what is wrong and what to do, with commands for the state directory it was
// given, and finishes quickly even when every process hangs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type MeshRuntime, processStartTicks } from '../../src/mesh/index.ts';
import { startFakeAdmin } from '../dashboard/fake-mesh.ts';
import { type GoldenMesh, startGoldenMesh } from '../golden/golden-mesh.ts';

let mesh: GoldenMesh;

before(async () => {
  mesh = await startGoldenMesh();
});

after(async () => {
  await mesh?.close();
});

/** A state directory of the golden mesh with its runtime.json changed by `change`. */
async function stateWith(name: string, change: (runtime: MeshRuntime) => MeshRuntime): Promise<string> {
  const stateDir = await mesh.makeState(name);
  const file = join(stateDir, 'runtime.json');
  const runtime = JSON.parse(await readFile(file, 'utf8')) as MeshRuntime;
  await writeFile(file, JSON.stringify(change(runtime)));
  return stateDir;
}

/** A loopback port that accepts connections and never answers (a hung process). */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('the advice of check, edges and identity names the state directory it was given', async () => {
  await mesh.makeState('advice');
  const check = await mesh.run(['check', '--state-dir', 'advice']);
  assert.equal(check.code, 1);
  // Without --state-dir, `mutual logs` reads the default directory: another mesh, or none.
  const commands = [...check.stdout.matchAll(/`(mutual (?:logs|down|up -f|identity|edges|check)[^`]*)`/g)];
  assert.ok(commands.length > 5, check.stdout);
  for (const [, command] of commands) {
    for (const part of command!.split(' && '))
      assert.match(part, /--state-dir advice$|--state-dir advice /, `${part} in ${check.stdout}`);
  }
  assert.match(check.stdout, /`mutual logs payments --proxy --state-dir advice`/);
  const edges = await mesh.run(['edges', '--state-dir', 'advice']);
  assert.match(edges.stdout, /See `mutual logs payments --proxy --state-dir advice`/);
  const identity = await mesh.run(['identity', 'payments', '--state-dir', 'advice']);
  assert.match(
    identity.stdout,
    /error\[MUTUAL_MESH_ADMIN_UNREACHABLE\]: the sidecar of payments did not answer/,
  );
  assert.match(identity.stdout, /`mutual logs payments --proxy --state-dir advice`/);
});

test('check finishes within seconds when the identity service and a sidecar accept but never answer', async () => {
  const hung = await silentServer();
  try {
    const { port } = new URL(hung.url);
    await stateWith('hung', (runtime) => ({
      ...runtime,
      identity: { ...runtime.identity, adminUrl: hung.url, apiUrl: `https://127.0.0.1:${port}` },
      services: runtime.services.map((service) =>
        service.name === 'cart' ? { ...service, adminUrl: hung.url } : service,
      ),
    }));
    const startedMs = Date.now();
    const result = await mesh.run(['check', '--state-dir', 'hung']);
    const tookMs = Date.now() - startedMs;
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /× identity service is reachable and ready\n\s+http:\/\/127\.0\.0\.1:\d+ did not answer: no answer within 2000 ms/,
    );
    assert.match(
      result.stdout,
      /× sidecar is ready\n\s+cart: the sidecar does not answer at http:\/\/127\.0\.0\.1:\d+: no answer within 2000 ms/,
    );
    // One check after the other, the 2-3 s waits added up to more than 15 s.
    assert.ok(tookMs < 8000, `check took ${tookMs} ms`);
  } finally {
    await hung.close();
  }
});

test('a killed sidecar and identity service: one failure each, naming the exited process; what depends on them is skipped', async () => {
  const gone = { pid: 999_999, startTicks: 1 };
  const stateDir = await stateWith('killed', (runtime) => ({
    ...runtime,
    identity: { ...runtime.identity, ...gone, adminUrl: runtime.services[2]!.adminUrl },
    services: runtime.services.map((service) =>
      service.name === 'payments' ? { ...service, proxy: { ...service.proxy, ...gone } } : service,
    ),
  }));
  const result = await mesh.run(['check', '--state-dir', 'killed']);
  assert.equal(result.code, 1);
  const out = result.stdout;
  assert.match(
    out,
    /× identity service is reachable and ready\n\s+http:\/\/127\.0\.0\.1:\d+ did not answer: connect ECONNREFUSED [^\n]*; the identity service \(pid 999999\) has exited, its log: \/dev\/null\n/,
  );
  assert.match(
    out,
    /- identity service's clock agrees with this machine's \(skipped: the identity service does not answer/,
  );
  assert.match(out, /- identity service presents its SPIFFE ID, chained to the trust bundle \(skipped: /);
  assert.match(
    out,
    /× sidecar is ready\n\s+payments: the sidecar does not answer at [^\n]*; its process \(pid 999999\) has exited/,
  );
  assert.ok(
    out.includes('`mutual down --state-dir killed && mutual up -f mesh.yaml --state-dir killed`'),
    out,
  );
  // Not "synchronise the clocks" for processes that are not there.
  assert.doesNotMatch(out, /timedatectl/);
  assert.match(
    out,
    /√ sidecar's clock agrees with this machine's \(web, cart\); skipped for payments: the sidecar does not answer \(see "sidecar is ready"\)/,
  );
  assert.match(
    out,
    /√ certificate is valid and chained to the trust bundle \(web, cart\); skipped for payments: /,
  );
  const json = await mesh.run(['check', '--state-dir', stateDir, '-o', 'json']);
  const clock = JSON.parse(json.stdout).checks.find(
    (check: { description: string }) => check.description === "sidecar's clock agrees with this machine's",
  );
  assert.deepEqual(
    clock.results.map((r: { subject: string; status: string }) => [r.subject, r.status]),
    [
      ['web', 'ok'],
      ['cart', 'ok'],
      ['payments', 'skip'],
    ],
  );
});

test('a truncated trust bundle and issuer: the read checks fail with the fix, the rest say they could not look', async () => {
  const stateDir = await mesh.makeState('truncated');
  for (const file of ['bundle.pem', 'issuer.crt']) {
    const path = join(stateDir, 'ca', file);
    await writeFile(path, (await readFile(path, 'utf8')).slice(0, 200));
  }
  const result = await mesh.run(['check', '--state-dir', 'truncated']);
  assert.equal(result.code, 1);
  const out = result.stdout;
  assert.match(out, /× trust anchors can be read\n\s+\S+bundle\.pem: malformed PEM: [^\n]*truncated file/);
  assert.match(
    out,
    /× issuer certificate and key can be read and belong together\n\s+\S+issuer\.crt: malformed PEM/,
  );
  assert.match(
    out,
    /- trust anchors are within their validity period \(skipped: \S+bundle\.pem: malformed PEM/,
  );
  assert.match(out, /- issuer chains to a current trust anchor \(skipped: /);
  // Advice for certificates nobody could read: wrong.
  assert.doesNotMatch(
    out,
    /rotate to an ECDSA P-256 anchor|create a new anchor and issuer|put the issuer's root/,
  );
});

test('a runtime.json cut short or edited: check explains it and still checks the CA; down removes it', async () => {
  for (const [name, text] of [
    ['cut-short', '{"version":1,"services":[{}]'],
    ['edited', '{"version":1,"services":[{"name":"x"}]}'],
  ] as const) {
    const stateDir = await mesh.makeState(name);
    await writeFile(join(stateDir, 'runtime.json'), text);
    const check = await mesh.run(['check', '--state-dir', name]);
    assert.equal(check.code, 1, check.stdout);
    assert.match(
      check.stdout,
      /× a mesh is running from the state directory\n\s+\S+runtime\.json is not a runtime file of this version of mutual \([^\n]+\); `mutual down --state-dir \S+` removes it\n/,
    );
    // No check fell over on a missing field ("service.ports is not iterable", "at undefined").
    assert.doesNotMatch(check.stdout, /the check itself failed|undefined/);
    assert.match(check.stdout, /√ trust anchors can be read: 1 root/);
    assert.match(check.stdout, /Status check results: 1 error/);
    for (const command of [['edges'], ['identity', 'web']]) {
      const result = await mesh.run([...command, '--state-dir', name]);
      assert.match(
        result.stdout,
        /^error\[MUTUAL_MESH_RUNTIME_INVALID\]: \S+runtime\.json is not a runtime file/,
      );
    }
    // What check advised: `mutual down` (it said the same and did nothing before).
    const down = await mesh.run(['down', '--state-dir', name]);
    assert.equal(down.code, 0, down.stdout);
    assert.match(down.stdout, /Removed it\. No `mutual up` holds [^\n]*so none was stopped/);
    await assert.rejects(stat(join(stateDir, 'runtime.json')), { code: 'ENOENT' });
    const after = await mesh.run(['check', '--state-dir', name]);
    assert.match(after.stdout, /× a mesh is running from the state directory\n\s+no runtime\.json in /);
  }
});

test('an exited identity service whose port another process took, and a stopped sidecar: each named, with what to do', async () => {
  // A real process, stopped as `kill -STOP` leaves it: its port accepts and never answers.
  const stopped = spawn('sleep', ['60'], { stdio: 'ignore' });
  await once(stopped, 'spawn');
  const [hung, other] = [await silentServer(), await startFakeAdmin('')];
  try {
    process.kill(stopped.pid!, 'SIGSTOP');
    const recorded = { pid: stopped.pid!, startTicks: processStartTicks(stopped.pid!) ?? 0 };
    await stateWith('taken', (runtime) => ({
      ...runtime,
      // Another server answers /ready 200 where the exited identity service was.
      identity: { ...runtime.identity, pid: 999_999, startTicks: 1, adminUrl: other.url },
      services: runtime.services.map((service) =>
        service.name === 'cart'
          ? { ...service, adminUrl: hung.url, proxy: { ...service.proxy, ...recorded } }
          : service,
      ),
    }));
    const result = await mesh.run(['check', '--state-dir', 'taken']);
    assert.equal(result.code, 1);
    const out = result.stdout;
    assert.match(
      out,
      /× identity service is reachable and ready\n\s+http:\/\/127\.0\.0\.1:(\d+): another process answers there, not the one `mutual up` started \(`ss -ltnp 'sport = :\1'` names it\); the identity service \(pid 999999\) has exited, its log: \/dev\/null\n/,
    );
    // Not the other process's clock or certificate.
    assert.match(out, /- identity service's clock agrees with this machine's \(skipped: /);
    assert.match(out, /- identity service presents its SPIFFE ID, chained to the trust bundle \(skipped: /);
    assert.match(
      out,
      new RegExp(
        `× sidecar is ready\\n\\s+cart: the sidecar does not answer at [^\\n]*: no answer within 2000 ms; its process \\(pid ${stopped.pid}\\) is stopped \\(kill -STOP, Ctrl-Z or a debugger\\): \`kill -CONT ${stopped.pid}\` resumes it\\n`,
      ),
    );
  } finally {
    stopped.kill('SIGKILL');
    await Promise.all([hung.close(), other.close()]);
  }
});

test('TLS clients refused by a sidecar that has no certificate yet are not plaintext: no advice to mesh the client', async () => {
  const notReady = await startFakeAdmin('mutual_inbound_refused_total{reason="not_ready",port="7002"} 3\n');
  try {
    await stateWith('not-ready', (runtime) => ({
      ...runtime,
      services: runtime.services.map((service) =>
        service.name === 'cart' ? { ...service, adminUrl: notReady.url } : service,
      ),
    }));
    const result = await mesh.run(['check', '--state-dir', 'not-ready']);
    // The sidecar refuses them after their ClientHello (not_ready): they were mTLS clients.
    assert.match(result.stdout, /√ no plaintext traffic into meshed workloads/);
    assert.doesNotMatch(result.stdout, /add the client to mesh\.yaml/);
  } finally {
    await notReady.close();
  }
});

test("the advice names this mesh's files: its mesh.yaml, state directory and policy directory", async () => {
  const stateDir = await stateWith('named', (runtime) => ({ ...runtime, file: '/srv/my shop/mesh.yaml' }));
  const { stdout } = await mesh.run(['check', '--state-dir', 'named']);
  // Run from another directory, `mutual up -f mesh.yaml` read a file that is not there.
  assert.ok(
    stdout.includes(
      "`mutual down --state-dir named && mutual up -f '/srv/my shop/mesh.yaml' --state-dir named`",
    ),
    stdout,
  );
  assert.ok(stdout.includes(`\`mutual ca issuer --ca ${stateDir}/ca --out next\``), stdout);
  assert.ok(stdout.includes(`\`mutual policy check ${mesh.dir}/policies\``), stdout);
  assert.doesNotMatch(stdout, /STATE_DIR|up -f mesh\.yaml|policy check DIR/);
});

test('a policy directory that is gone: one failure naming it; the traps check says it could not look', async () => {
  await stateWith('no-policies', (runtime) => ({ ...runtime, policyDir: `${mesh.dir}/gone` }));
  const { code, stdout } = await mesh.run(['check', '--state-dir', 'no-policies']);
  assert.equal(code, 1);
  assert.match(stdout, /× policy files are valid\n\s+\S+\/gone: no such file or directory\n/);
  assert.match(
    stdout,
    /- policies have no traps \(skipped: \S+\/gone: no such file or directory \(see "policy files are valid"\)\)/,
  );
});
