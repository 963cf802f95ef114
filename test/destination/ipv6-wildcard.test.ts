// The destination service on 0.0.0.0 (as `mutual install` runs it) answers over IPv6 too: in an
// IPv6-only cluster the sidecars reach its Service, and the kubelet its admin port, at the pod's
// IPv6 address. Here [::1] stands for it, through curl with a mesh SVID; after close() neither
// port accepts over IPv6 any more. Skipped on a host without IPv6.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { systemClock } from '../../src/clock.ts';
import { startDestinationService } from '../../src/destination/index.ts';
import { createProxyLog } from '../../src/proxy/index.ts';
import { curlStatus, ipv6CurlSkipReason } from '../../src/testing/ipv6.ts';
import { createTestPki } from '../../src/testing/mesh-pki.ts';
import { tableFileIn, writeTable } from './destination-fixture.ts';

const _run = promisify(execFile);

const skip = await ipv6CurlSkipReason();

test('listening on 0.0.0.0, the API and the admin port answer over IPv6; close() stops both', {
  skip,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-destination-ipv6-'));
  try {
    const pki = await createTestPki(join(dir, 'pki'));
    const web = await pki.workload('web');
    const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
    const tableFile = tableFileIn(dir);
    await writeTable(
      tableFile,
      'destinations:\n  - address: 198.18.0.3\n    serverId: spiffe://cluster.local/ns/demo/sa/emoji\n',
    );
    const service = await startDestinationService({
      listen: { host: '0.0.0.0', port: 0 },
      adminListen: { host: '0.0.0.0', port: 0 },
      credentials: {
        kind: 'files',
        certFile: own.certFile,
        keyFile: own.keyFile,
        bundleFile: own.bundleFile,
      },
      tableFile,
      clock: systemClock,
      log: createProxyLog(() => {}, systemClock.now),
    });
    const apiPort = new URL(service.apiUrl).port;
    const adminPort = new URL(service.adminUrl).port;
    const curl = curlStatus;
    // -k: the service's certificate names its SPIFFE ID, not a host name curl could check.
    const meshClient = ['-k', '--cert', web.certFile, '--key', web.keyFile];
    try {
      assert.equal(await curl(`https://[::1]:${apiPort}/v1/destinations/198.18.0.3:8080`, meshClient), '200');
      assert.equal(await curl(`http://[::1]:${adminPort}/ready`), '200');
      assert.equal(
        await curl(`https://127.0.0.1:${apiPort}/v1/destinations/198.18.0.3:8080`, meshClient),
        '200',
      );
      // The IPv6 side refuses a client without a mesh certificate as the IPv4 side does.
      assert.match(
        await curl(`https://[::1]:${apiPort}/v1/destinations/198.18.0.3:8080`, ['-k']),
        /failed|000/,
      );
    } finally {
      await service.close();
    }
    assert.match(await curl(`http://[::1]:${adminPort}/ready`), /failed: curl: \(7\)/);
    assert.match(
      await curl(`https://[::1]:${apiPort}/v1/destinations/198.18.0.3:8080`, meshClient),
      /failed: curl: \(7\)/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
