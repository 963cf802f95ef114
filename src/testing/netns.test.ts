import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { canUseNetns, createPodNetwork } from './netns.ts';

const skip = canUseNetns();
const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

test('pods on one network reach each other by address; close removes every namespace', { skip }, async () => {
  const network = await createPodNetwork({ prefix: 'nstest' });
  try {
    const a = await network.addPod('a');
    const b = await network.addPod('b');
    assert.equal(a.address, '198.18.0.2');
    assert.equal(b.address, '198.18.0.3');
    assert.match(namespaces(), new RegExp(`${network.id}-a`));

    const own = await a.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.match(own.stdout, /inet 198\.18\.0\.2\/15/);
    // TCP from a to b: a node listener in b, bash's /dev/tcp in a.
    const listener = b.spawn(process.execPath, [
      '-e',
      "require('net').createServer((s) => s.end('hello from b\\n')).listen(7000, '0.0.0.0', () => console.log('up'))",
    ]);
    await new Promise((resolve) => listener.stdout!.once('data', resolve));
    const reply = await a.exec('bash', ['-c', `exec 3<>/dev/tcp/${b.address}/7000 && cat <&3`]);
    assert.equal(reply.stdout, 'hello from b\n', reply.stderr);
    // As another uid, through setpriv.
    const uid = await a.exec('id', ['-u'], { uid: 2102 });
    assert.equal(uid.stdout.trim(), '2102');
    // Nothing leaks into the host: b's address is not reachable from here.
    assert.doesNotMatch(execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }), /198\.18\.0\.2\//);
  } finally {
    await network.close();
  }
  assert.doesNotMatch(namespaces(), new RegExp(network.id));
  await network.close(); // twice is fine
});

test('two networks at once do not collide', { skip }, async () => {
  const [one, two] = await Promise.all([
    createPodNetwork({ prefix: 'nstest' }),
    createPodNetwork({ prefix: 'nstest' }),
  ]);
  try {
    assert.notEqual(one.id, two.id);
    const [a, b] = await Promise.all([one.addPod('a'), two.addPod('a')]);
    assert.equal(a.address, b.address, 'same address, separate bridges');
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
});

test('a bad prefix is refused', { skip }, async () => {
  await assert.rejects(createPodNetwork({ prefix: 'Bad_Prefix' }), /prefix/);
});
