// The --state-dir flag that advice (check, edges, identity, up) prints must work when pasted into a
// shell, whatever the directory is called.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { DEFAULT_MESH_STATE_DIR, shellQuote, stateFlagOf } from './up-command.ts';

test('stateFlagOf: nothing for the default directory, the flag otherwise', () => {
  assert.equal(stateFlagOf(DEFAULT_MESH_STATE_DIR), '');
  assert.equal(stateFlagOf('/tmp/mesh-1/state'), ' --state-dir /tmp/mesh-1/state');
});

test('shellQuote: a POSIX shell reads every quoted directory name back unchanged', () => {
  for (const name of ['/tmp/plain', '/tmp/my mesh', "/tmp/it's", '/tmp/$HOME`x`;rm -rf', '/tmp/"q"\\n', '']) {
    const echoed = execFileSync('sh', ['-c', `printf %s ${shellQuote(name)}`], { encoding: 'utf8' });
    assert.equal(echoed, name);
  }
});
