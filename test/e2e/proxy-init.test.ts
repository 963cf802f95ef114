// `mutual proxy init` in a real network namespace: the rules it installs redirect a pod's inbound
// and outbound TCP to the proxy ports, SO_ORIGINAL_DST reads where each connection was going,
// the proxy's own uid goes straight out, and dry-run / re-run / uninstall behave — for IPv4
// (iptables) and IPv6 (ip6tables; the pods are dual-stack, 2001:2::/64).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
  (['iptables-restore', 'iptables-save', 'ip6tables-restore', 'ip6tables-save'].every((c) => hasCommand(c))
    ? undefined
    : 'iptables-save / iptables-restore / ip6tables-save / ip6tables-restore are not installed');

let network: PodNetwork;
let app: Pod; // pod A: the meshed workload, with the rules and a stand-in proxy on 4140/4143/4191
let peer: Pod; // pod B: a plain server on 8080

/** Runs `mutual proxy init ARGS` in the pod, optionally under a wrapper command (e.g. setpriv). */
const mutual = (pod: Pod, args: string[], wrapper: string[] = []) => {
  const argv = [process.execPath, join(repoRoot(), 'bin', 'mutual.js'), 'proxy', 'init', ...args];
  const [command, ...rest] = [...wrapper, ...argv];
  return pod.exec(command!, rest);
};
const natRules = async (pod: Pod, save: 'iptables-save' | 'ip6tables-save' = 'iptables-save') => {
  const saved = await pod.exec(save, ['-t', 'nat']);
  assert.equal(saved.code, 0, saved.stderr);
  return saved.stdout
    .split('\n')
    .filter((line) => line.startsWith('-A') || line.startsWith(':'))
    .join('\n');
};
const nat6Rules = (pod: Pod) => natRules(pod, 'ip6tables-save');
/** Connects with bash's /dev/tcp (works for any uid, IPv4 or IPv6) and returns the server's JSON answer. */
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

test('--uninstall removes every MUTUAL_ chain and jump of both families; a second uninstall is a no-op', {
  skip,
}, async () => {
  assert.equal((await mutual(app, [])).code, 0);
  assert.match(await nat6Rules(app), /MUTUAL_OUTBOUND/);
  const run = await mutual(app, ['--uninstall']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /removed iptables chains MUTUAL_INBOUND, MUTUAL_OUTBOUND/);
  assert.match(run.stdout, /removed ip6tables chains MUTUAL_INBOUND, MUTUAL_OUTBOUND/);
  assert.doesNotMatch(await natRules(app), /MUTUAL_/);
  assert.doesNotMatch(await nat6Rules(app), /MUTUAL_/);
  const again = await mutual(app, ['--uninstall']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /iptables nat table: nothing to remove/);
  assert.match(again.stdout, /ip6tables nat table: nothing to remove/);
  // Without the rules the app reaches the peer directly, over either family.
  assert.equal((await call(app, peer.address, 8080)).server, 'peer');
  assert.equal((await call(app, peer.address6, 8080)).server, 'peer');
});

test('--dry-run prints both rule sets, labelled; IPv6 subnets go to the IPv6 set only', {
  skip,
}, async () => {
  const before = [await natRules(app), await nat6Rules(app)];
  const run = await mutual(app, ['--dry-run', '--skip-outbound-subnets', '10.96.0.0/12,fd00:10:96::/112']);
  assert.equal(run.code, 0, run.stderr);
  const [ipv4 = '', ipv6 = ''] = run.stdout.split(/^(?=# IPv6: )/m);
  assert.match(ipv4, /^# IPv4: input for `iptables-restore --noflush` \(dry run: nothing was changed\)$/m);
  assert.match(ipv6, /^# IPv6: input for `ip6tables-restore --noflush` \(dry run: nothing was changed\)$/m);
  assert.match(ipv4, /^-A MUTUAL_OUTBOUND -d 127\.0\.0\.0\/8 -j RETURN$/m);
  assert.match(ipv4, /^-A MUTUAL_OUTBOUND -d 10\.96\.0\.0\/12 -j RETURN$/m);
  assert.doesNotMatch(ipv4, /fd00|::1/);
  assert.match(ipv6, /^-A MUTUAL_OUTBOUND -d ::1\/128 -j RETURN$/m);
  assert.match(ipv6, /^-A MUTUAL_OUTBOUND -d fd00:10:96::\/112 -j RETURN$/m);
  assert.match(ipv6, /^-A MUTUAL_INBOUND -p tcp -j REDIRECT --to-ports 4143$/m);
  assert.doesNotMatch(ipv6, /127\.0\.0\.0|10\.96/);
  assert.deepEqual([await natRules(app), await nat6Rules(app)], before);
  // A bad subnet is refused naming it, whichever family it claims to be.
  const bad = await mutual(app, ['--dry-run', '--skip-outbound-subnets', '10.96.0.0/12,fd00::/129']);
  assert.equal(bad.code, 2, 'a usage error');
  assert.match(
    bad.stderr,
    /error\[MUTUAL_CLI_USAGE\]: --skip-outbound-subnets "fd00::\/129" has a bad prefix length/,
  );
});

test('IPv6: installed rules redirect outbound and inbound TCP; IP6T_SO_ORIGINAL_DST reads the real target', {
  skip,
}, async () => {
  const run = await mutual(app, []);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /installed ip6tables rules \(nat table, IPv6\):\n {2}inbound TCP {2}→ :4143/);
  assert.match(run.stdout, /loopback \(::1\/128\)/);

  // Outbound: the app dials the peer's IPv6 address; the stand-in proxy's [::] socket on 4140 answers.
  const outbound = await call(app, peer.address6, 8080);
  assert.equal(outbound.server, 'proxy');
  assert.equal(outbound.port, 4140);
  assert.deepEqual(outbound.destination, { address: peer.address6, port: 8080, family: 'IPv6' });
  assert.equal(outbound.isSelf, false);

  // Inbound: the peer dials the app's IPv6 address.
  const inbound = await call(peer, app.address6, 8080);
  assert.equal(inbound.server, 'proxy');
  assert.equal(inbound.port, 4143);
  assert.equal(inbound.remote, peer.address6);
  assert.deepEqual(inbound.destination, { address: app.address6, port: 8080, family: 'IPv6' });
  assert.equal(inbound.isSelf, false);

  // The admin port, the proxy's own uid and loopback (::1) are not redirected.
  const admin = await call(peer, app.address6, 4191);
  assert.equal(admin.port, 4191);
  assert.equal(admin.isSelf, true);
  const direct = await call(app, peer.address6, 8080, PROXY_UID);
  assert.equal(direct.server, 'peer');
  const self = await call(app, '::1', 4140);
  assert.deepEqual(self.destination, { address: '::1', port: 4140, family: 'IPv6' });
  assert.equal(self.isSelf, true);

  // Idempotent in IPv6 too.
  const once = await nat6Rules(app);
  assert.equal((await mutual(app, [])).code, 0);
  assert.equal(await nat6Rules(app), once);
  assert.equal(once.match(/-j MUTUAL_INBOUND/g)?.length, 1);
  assert.equal(once.match(/REDIRECT/g)?.length, 2);
});

test('--ipv6 off removes earlier IPv6 rules; on without ip6tables refuses and changes nothing; auto then installs IPv4 only', {
  skip,
}, async () => {
  assert.equal((await mutual(app, [])).code, 0);
  const off = await mutual(app, ['--ipv6', 'off']);
  assert.equal(off.code, 0, off.stderr);
  assert.match(
    off.stdout,
    /IPv6: no rules installed \(--ipv6 off\); removed earlier ip6tables chains MUTUAL_INBOUND/,
  );
  assert.doesNotMatch(await nat6Rules(app), /MUTUAL_/);
  assert.match(await natRules(app), /MUTUAL_OUTBOUND/);
  assert.equal((await call(app, peer.address6, 8080)).server, 'peer', 'IPv6 is no longer intercepted');

  // A PATH with iptables but no ip6tables.
  const bin = await mkdtemp(join(tmpdir(), 'mutual-no-ip6tables-'));
  try {
    for (const tool of ['iptables-save', 'iptables-restore']) {
      const path = (await app.exec('bash', ['-c', `command -v ${tool}`])).stdout.trim();
      await symlink(path, join(bin, tool));
    }
    assert.equal((await mutual(app, ['--uninstall'])).code, 0);
    const on = await mutual(app, ['--ipv6', 'on'], ['env', `PATH=${bin}`]);
    assert.equal(on.code, 1);
    assert.match(
      on.stderr,
      /error\[MUTUAL_PROXY_INIT_IPV6_UNAVAILABLE\]: --ipv6 on, but ip6tables cannot use the nat table/,
    );
    assert.match(on.stderr, /ip6tables-save is not installed/);
    assert.doesNotMatch(await natRules(app), /MUTUAL_/, 'nothing changed, IPv4 included');
    const auto = await mutual(app, [], ['env', `PATH=${bin}`]);
    assert.equal(auto.code, 0, auto.stderr);
    assert.match(auto.stdout, /installed iptables rules \(nat table, IPv4\)/);
    assert.match(auto.stdout, /IPv6: no rules installed \(ip6tables-save is not installed or not on PATH\)/);
    assert.match(await natRules(app), /MUTUAL_OUTBOUND/);
    const badMode = await mutual(app, ['--ipv6', 'yes']);
    assert.equal(badMode.code, 2, 'a usage error');
    assert.match(badMode.stderr, /error\[MUTUAL_CLI_USAGE\]: --ipv6 "yes" is not a mode: give auto, on, off/);
  } finally {
    await rm(bin, { recursive: true, force: true });
  }
  assert.equal((await mutual(app, ['--uninstall'])).code, 0);
});
