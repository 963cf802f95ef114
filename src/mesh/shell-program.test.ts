import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shellScriptProgram } from './shell-program.ts';

test('the program a string command runs first, where it can be told without a shell', () => {
  assert.equal(shellScriptProgram('python3 -m http.server $PORT --bind 127.0.0.1'), 'python3');
  assert.equal(shellScriptProgram('  redis-server --port $PORT'), 'redis-server');
  assert.equal(shellScriptProgram('./serve.sh'), './serve.sh');
  assert.equal(shellScriptProgram('serve.sh;echo done'), 'serve.sh');
  assert.equal(
    shellScriptProgram('sed "s/LISTEN_PORT/$PORT/" nginx.conf.in > nginx.conf && exec nginx'),
    'sed',
  );
  assert.equal(shellScriptProgram('/usr/bin/env node app.js'), '/usr/bin/env');
});

test('no program when the shell runs it itself or only a shell could tell', () => {
  for (const script of [
    'while true; do curl -s $FILES_URL/; sleep 1; done',
    'exec nginx -c "$PWD/nginx.conf"',
    'cd app && ./serve.sh',
    '[ -f x ] && serve',
    'FOO=1 serve',
    '"$HOME/bin/serve"',
    "'serve'",
    '$SERVER --port $PORT',
    '~/bin/serve',
    'serv* --port 1',
    '(serve)',
    '{ serve; }',
    '! serve',
    '# a comment',
    '',
    '   ',
  ])
    assert.equal(shellScriptProgram(script), undefined, script);
});
