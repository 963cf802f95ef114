// `mutual proxy run` with static credential files that can never work ends at start with the
// reason, as ghostunnel does, instead of saying it is listening and never becoming ready; files
// that time or another process may mend (missing, expired) are still waited for.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, startProxyProcess, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { runMutual } from '../e2e/run-mutual.ts';

let dir: string;
let web: WorkloadFiles;
let api: WorkloadFiles;
let expired: WorkloadFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-credentials-startup-'));
  const pki = await createTestPki(dir);
  web = await pki.workload('web');
  api = await pki.workload('api');
  expired = await pki.workload('old', { atMs: Date.now() - 3 * 86_400_000, lifetimeMs: 3_600_000 });
});

after(() => rm(dir, { recursive: true, force: true }));

const run = (cert: string, key: string, bundle: string) =>
  runMutual(
    ['proxy', 'run', '--cert', cert, '--key', key, '--bundle', bundle].concat([
      '--inbound',
      '127.0.0.1:0=9',
      '--admin-listen',
      '127.0.0.1:0',
    ]),
    { timeoutMs: 15_000 },
  );

test('a key given as the certificate ends the command at start, naming the file', async () => {
  const result = await run(web.keyFile, web.certFile, web.bundleFile);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stderr, /^error\[MUTUAL_PKI_PEM_WRONG_TYPE\]: .*key\.pem: expected "CERTIFICATE"/m);
  assert.doesNotMatch(result.stdout, /listening/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});

test("another certificate's key ends the command at start", async () => {
  const result = await run(web.certFile, api.keyFile, web.bundleFile);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stderr,
    /^error\[MUTUAL_PROXY_CREDENTIALS_INVALID\]: .* is not the key of the certificate/m,
  );
  assert.doesNotMatch(result.stdout, /listening/);
});

test('a key given as the trust bundle ends the command at start', async () => {
  const result = await run(web.certFile, web.keyFile, web.keyFile);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stderr, /^error\[MUTUAL_PKI_PEM_WRONG_TYPE\]/m);
});

test('missing or expired credentials are waited for: the sidecar listens, not ready', async () => {
  for (const [cert, key] of [
    [join(dir, 'not-yet-mounted.pem'), web.keyFile],
    [expired.certFile, expired.keyFile],
  ] as const) {
    const proxy = await startProxyProcess([
      ...['--cert', cert, '--key', key, '--bundle', web.bundleFile],
      ...['--inbound', '127.0.0.1:0=9', '--admin-listen', '127.0.0.1:0'],
    ]);
    try {
      assert.equal((await fetch(`${proxy.adminUrl}/ready`)).status, 503, cert);
    } finally {
      await proxy.stop();
    }
  }
});
