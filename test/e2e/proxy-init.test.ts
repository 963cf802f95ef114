// `mutual proxy init` in a real network namespace: the rules it installs redirect a pod's inbound
// and outbound TCP to the proxy ports, SO_ORIGINAL_DST reads where each connection was going,
// the proxy's own uid goes straight out, and dry-run / re-run / uninstall behave.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  canUseNetns,
  createPodNetwork,
  hasCommand,
  type Pod,
  type PodNetwork,
} from '../../src/testing/netns.ts';
import { repoRoot } from './run-mutual.ts';

const PROXY_UID = 2102;
const skip =
  canUseNetns() ??
  (hasCommand('iptables-restore') && hasCommand('iptables-save')
    ? undefined
    : 'iptables-save / iptables-restore are not installed');

let network: PodNetwork;
let app: Pod; // pod A: the meshed workload, with the rules and a stand-in proxy on 4140/4143/4191
let peer: Pod; // pod B: a plain server on 8080

/** Runs `mutual proxy init ARGS` in the pod, optionally under a wrapper command (e.g. setpriv). */
const mutual = (pod: Pod, args: string[], wrapper: string[] = []) => {
  const argv = [process.execPath, join(repoRoot(), 'bin', 'mutual.js'), 'proxy', 'init', ...args];
  const [command, ...rest] = [...wrapper, ...argv];
  return pod.exec(command!, rest);
};
const natRules = async (pod: Pod) => {
  const saved = await pod.exec('iptables-save', ['-t', 'nat']);
  assert.equal(saved.code, 0, saved.stderr);
  return saved.stdout
    .split('\n')
    .filter((line) => line.startsWith('-A') || line.startsWith(':'))
    .join('\n');
};
/** Connects with bash's /dev/tcp (works for any uid) and returns the server's JSON answer. */
const call = async (pod: Pod, address: string, port: number, uid?: number) => {
  const result = await pod.exec('bash', ['-c', `exec 3<>/dev/tcp/${address}/${port} && cat <&3`], {
    ...(uid === undefined ? {} : { uid }),
    timeoutMs: 10_000,
  });
  assert.equal(result.code, 0, `connect ${address}:${port}: ${result.stderr}`);
  return JSON.parse(result.stdout);
};
const startServer = async (pod: Pod, name: string, ports: number[]) => {
  const fixture = join(repoRoot(), 'dist', 'test', 'e2e', 'fixtures', 'intercept-server.js');
  const child = pod.spawn(process.execPath, [fixture, name, ...ports.map(String)]);
  let output = '';
  for await (const chunk of child.stdout!) {
    output += String(chunk);
    if (output.includes('listening')) return;
  }
  const [code] = await once(child, 'exit').catch(() => [null]);
  throw new Error(`${name} server exited (${code}) before listening`);
};

before(async () => {
  if (skip) return;
  network = await createPodNetwork({ prefix: 'pinit' });
  app = await network.addPod('app');
  peer = await network.addPod('peer');
  await startServer(app, 'proxy', [4140, 4143, 4191]);
  await startServer(peer, 'peer', [8080]);
});
after(async () => {
  await network?.close();
});

test('--dry-run prints the rules and changes nothing', { skip }, async () => {
  const before = await natRules(app);
  const run = await mutual(app, ['--dry-run', '--skip-outbound-ports', '25']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^-A MUTUAL_OUTBOUND -m owner --uid-owner 2102 -j RETURN$/m);
  assert.match(run.stdout, /^-A MUTUAL_OUTBOUND -p tcp --dport 25 -j RETURN$/m);
  assert.match(run.stdout, /^-A MUTUAL_INBOUND -p tcp -j REDIRECT --to-ports 4143$/m);
  assert.equal(await natRules(app), before);
  assert.doesNotMatch(before, /MUTUAL_/);
});

test('without NET_ADMIN init refuses with a coded error', { skip }, async () => {
  const run = await mutual(app, [], ['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin']);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /error\[MUTUAL_PROXY_INIT_PERMISSION_DENIED\]/);
  assert.doesNotMatch(await natRules(app), /MUTUAL_/);
  // A dry run still works without privileges, planned as for a fresh install.
  const dryRun = await mutual(
    app,
    ['--dry-run'],
    ['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin'],
  );
  assert.equal(dryRun.code, 0, dryRun.stderr);
  assert.match(dryRun.stdout, /could not be read \(no NET_ADMIN\)/);
  assert.match(dryRun.stdout, /^-A OUTPUT -p tcp -j MUTUAL_OUTBOUND$/m);
});

test('installed rules redirect outbound and inbound TCP; SO_ORIGINAL_DST reads the real target', {
  skip,
}, async () => {
  const run = await mutual(app, []);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /inbound TCP {2}→ :4143/);

  // Outbound: the app dials the peer, the stand-in proxy on 4140 answers, knowing the peer's address.
  const outbound = await call(app, peer.address, 8080);
  assert.equal(outbound.server, 'proxy');
  assert.equal(outbound.port, 4140);
  assert.deepEqual(outbound.destination, { address: peer.address, port: 8080, family: 'IPv4' });
  assert.equal(outbound.isSelf, false);

  // Inbound: the peer dials the app's port 8080, the stand-in proxy on 4143 answers.
  const inbound = await call(peer, app.address, 8080);
  assert.equal(inbound.server, 'proxy');
  assert.equal(inbound.port, 4143);
  assert.equal(inbound.remote, peer.address);
  assert.deepEqual(inbound.destination, { address: app.address, port: 8080, family: 'IPv4' });
  assert.equal(inbound.isSelf, false);

  // The admin port is never redirected.
  const admin = await call(peer, app.address, 4191);
  assert.equal(admin.port, 4191);
  assert.deepEqual(admin.destination, { address: app.address, port: 4191, family: 'IPv4' });
  assert.equal(admin.isSelf, true);

  // The proxy's own uid reaches the peer directly (else the proxy would loop into itself).
  const direct = await call(app, peer.address, 8080, PROXY_UID);
  assert.equal(direct.server, 'peer');
  assert.equal(direct.port, 8080);

  // Loopback is not redirected; dialling the proxy port directly is seen as "self".
  const self = await call(app, '127.0.0.1', 4140);
  assert.equal(self.port, 4140);
  assert.deepEqual(self.destination, { address: '127.0.0.1', port: 4140, family: 'IPv4' });
  assert.equal(self.isSelf, true);
});

test('init is idempotent: a re-run leaves one copy of every rule', { skip }, async () => {
  assert.equal((await mutual(app, [])).code, 0);
  const once = await natRules(app);
  assert.equal((await mutual(app, [])).code, 0);
  const twice = await natRules(app);
  assert.equal(twice, once);
  assert.equal(twice.match(/-j MUTUAL_INBOUND/g)?.length, 1);
  assert.equal(twice.match(/-j MUTUAL_OUTBOUND/g)?.length, 1);
  // New options replace the old rules rather than adding to them.
  assert.equal((await mutual(app, ['--skip-inbound-ports', '8080'])).code, 0);
  const changed = await natRules(app);
  assert.match(changed, /-A MUTUAL_INBOUND -p tcp -m tcp --dport 8080 -j RETURN/);
  assert.equal(changed.match(/REDIRECT/g)?.length, 2);
  const skipped = await peer.exec('bash', ['-c', `exec 3<>/dev/tcp/${app.address}/8080`]);
  assert.notEqual(
    skipped.code,
    0,
    '8080 is skipped now and nothing listens on it: the connection is refused',
  );
});

test('--uninstall removes every MUTUAL_ chain and jump; a second uninstall is a no-op', {
  skip,
}, async () => {
  assert.equal((await mutual(app, [])).code, 0);
  const run = await mutual(app, ['--uninstall']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /removed iptables chains MUTUAL_INBOUND, MUTUAL_OUTBOUND/);
  assert.doesNotMatch(await natRules(app), /MUTUAL_/);
  const again = await mutual(app, ['--uninstall']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing to remove/);
  // Without the rules the app reaches the peer directly.
  assert.equal((await call(app, peer.address, 8080)).server, 'peer');
});
