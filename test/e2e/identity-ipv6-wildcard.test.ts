// The identity service on 0.0.0.0 (as `mutual install` runs it) answers over IPv6 too: in an
// IPv6-only cluster the sidecars reach its Service, and the kubelet its admin port, at the pod's
// IPv6 address, and before this no workload there could get a certificate. Here [::1] stands for
// it, through curl. Skipped on a host without IPv6.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { curlStatus, ipv6CurlSkipReason } from '../../src/testing/ipv6.ts';
import { createCa, startIdentityService } from './run-mutual.ts';

const _run = promisify(execFile);

const skip = await ipv6CurlSkipReason();

const curl = curlStatus;

test('listening on 0.0.0.0, the API and the admin port answer over IPv6 and IPv4', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-identity-ipv6-'));
  try {
    await createCa(join(dir, 'ca'));
    const service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), [
      ...['--listen', '0.0.0.0:0', '--admin-listen', '0.0.0.0:0'],
    ]);
    try {
      const apiPort = service.apiUrl.port;
      const adminPort = service.adminUrl.port;
      // -k: the service's certificate names the identity service, not [::1].
      assert.equal(await curl(`https://[::1]:${apiPort}/v1/bundle`, ['-k']), '200');
      assert.equal(await curl(`https://127.0.0.1:${apiPort}/v1/bundle`, ['-k']), '200');
      assert.equal(await curl(`http://[::1]:${adminPort}/ready`), '200');
      assert.equal(await curl(`http://127.0.0.1:${adminPort}/ready`), '200');
    } finally {
      await service.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
