// `mutual proxy run` on a port something else holds: one MUTUAL_PROXY_LISTEN_FAILED line and exit
// 1, for the inbound and the admin listener, with and without a policy directory. (It used to
// print the error and then keep running, listening on nothing, until killed.)
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestPki, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { runMutual } from '../e2e/run-mutual.ts';

describe('proxy run on a taken port', () => {
  let dir: string;
  let web: WorkloadFiles;
  let taken: Server;
  let takenPort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-listen-failure-'));
    web = await (await createTestPki(join(dir, 'pki'))).workload('web');
    await mkdir(join(dir, 'policies'));
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    takenPort = (taken.address() as AddressInfo).port;
  });
  after(async () => {
    taken.close();
    await rm(dir, { recursive: true, force: true });
  });

  const staticCredentials = () => ['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile];

  for (const { name, args, credentials } of [
    {
      name: 'inbound port taken',
      args: () => ['--inbound', `127.0.0.1:${takenPort}=8080`, '--admin-listen', '127.0.0.1:0'],
    },
    {
      name: 'inbound port taken, with a watched policy directory',
      args: () => [
        ...['--inbound', `127.0.0.1:${takenPort}=8080`, '--admin-listen', '127.0.0.1:0'],
        ...['--policy-dir', join(dir, 'policies'), '--namespace', 'demo'],
      ],
    },
    {
      name: 'admin port taken',
      args: () => ['--inbound', '127.0.0.1:0=8080', '--admin-listen', `127.0.0.1:${takenPort}`],
    },
    {
      // The failure comes before the certificate loop has started; it must not start afterwards
      // and keep the process alive (`mutual up` then waited for a sidecar that would never listen).
      name: 'admin port taken, certifying against an identity service',
      credentials: () => [
        ...['--identity-url', 'https://127.0.0.1:1', '--token-file', web.certFile],
        ...['--spiffe-id', web.spiffeId, '--identity-bundle', web.bundleFile],
      ],
      args: () => ['--inbound', '127.0.0.1:0=8080', '--admin-listen', `127.0.0.1:${takenPort}`],
    },
  ] as { name: string; args: () => string[]; credentials?: () => string[] }[]) {
    test(`${name}: the error, then exit 1`, async () => {
      const run = await runMutual(['proxy', 'run', ...(credentials ?? staticCredentials)(), ...args()], {
        timeoutMs: 20_000,
      });
      assert.equal(run.code, 1, `expected exit 1, got ${run.code}; stderr:\n${run.stderr}`);
      assert.match(
        run.stderr,
        new RegExp(`error\\[MUTUAL_PROXY_LISTEN_FAILED\\]: cannot listen on 127\\.0\\.0\\.1:${takenPort}`),
      );
      assert.match(run.stderr, /EADDRINUSE/);
      assert.doesNotMatch(run.stdout, /mutual proxy listening/);
    });
  }
});
