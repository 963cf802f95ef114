// Every `mutual proxy run` flag has a MUTUAL_PROXY_<FLAG> variable, the flags with a default too:
// the real binary, given only the variable, does what the flag would.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, startProxyProcess, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';

let dir: string;
let web: WorkloadFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-env-flags-'));
  web = await (await createTestPki(join(dir, 'pki'))).workload('web');
});
after(() => rm(dir, { recursive: true, force: true }));

const args = () => [
  ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
  ...['--upstream', `127.0.0.1:0=${web.spiffeId}@127.0.0.1:1`],
];

test('MUTUAL_PROXY_ADMIN_LISTEN moves the admin listener (it was ignored for the default 127.0.0.1:4191)', async () => {
  const proxy = await startProxyProcess(args(), { MUTUAL_PROXY_ADMIN_LISTEN: '127.0.0.1:0' });
  try {
    assert.doesNotMatch(proxy.adminUrl, /:4191$/);
    assert.equal((await fetch(`${proxy.adminUrl}/live`)).status, 200);
  } finally {
    await proxy.stop();
  }
});

test('MUTUAL_PROXY_DETECT_TIMEOUT and MUTUAL_PROXY_DRAIN_TIMEOUT are read and checked like their flags', async () => {
  const started = await startProxyProcess([...args(), '--admin-listen', '127.0.0.1:0'], {
    MUTUAL_PROXY_DETECT_TIMEOUT: 'soon',
    MUTUAL_PROXY_DRAIN_TIMEOUT: '10',
  }).catch((error: Error) => error);
  if (!(started instanceof Error)) {
    await started.stop();
    assert.fail('the proxy started with both variables ignored');
  }
  assert.match(
    started.message,
    /MUTUAL_PROXY_CONFIG_INVALID[\s\S]*--detect-timeout "soon" is not a duration[\s\S]*--drain-timeout "10" is not a duration/,
  );
});
