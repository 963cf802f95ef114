// `mutual identity serve` and `mutual destination serve` on a port something else holds: their own
// LISTEN_FAILED code naming the address and the flag, then exit 1. (Both used to print
// MUTUAL_INTERNAL, "a bug in Mutual", for an admin port in use; the identity service then kept
// running, CA watcher and all, with no listener.)
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestPki, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { createCa, runMutual } from './run-mutual.ts';

describe('control-plane daemons on a taken port', () => {
  let dir: string;
  let destination: WorkloadFiles;
  let taken: Server;
  let takenPort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-daemon-listen-'));
    await createCa(join(dir, 'ca'));
    destination = await (await createTestPki(join(dir, 'pki'))).workload('destination', {
      ns: 'mutual-system',
    });
    await writeFile(join(dir, 'table.yaml'), '');
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    takenPort = (taken.address() as AddressInfo).port;
  });
  after(async () => {
    taken.close();
    await rm(dir, { recursive: true, force: true });
  });

  const identity = (listen: string, admin: string) => [
    ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, 'state')],
    ...['--listen', listen, '--admin-listen', admin],
  ];
  const destinationServe = (listen: string, admin: string) => [
    ...['destination', 'serve', '--file', join(dir, 'table.yaml')],
    ...['--cert', destination.certFile, '--key', destination.keyFile, '--bundle', destination.bundleFile],
    ...['--listen', listen, '--admin-listen', admin],
  ];

  for (const { name, args, code, flag } of [
    {
      name: 'identity serve, API port taken',
      args: () => identity(`127.0.0.1:${takenPort}`, '127.0.0.1:0'),
      code: 'MUTUAL_IDENTITY_LISTEN_FAILED',
      flag: 'API, --listen',
    },
    {
      name: 'identity serve, admin port taken',
      args: () => identity('127.0.0.1:0', `127.0.0.1:${takenPort}`),
      code: 'MUTUAL_IDENTITY_LISTEN_FAILED',
      flag: 'admin, --admin-listen',
    },
    {
      name: 'destination serve, API port taken',
      args: () => destinationServe(`127.0.0.1:${takenPort}`, '127.0.0.1:0'),
      code: 'MUTUAL_DESTINATION_LISTEN_FAILED',
      flag: 'API, --listen',
    },
    {
      name: 'destination serve, admin port taken',
      args: () => destinationServe('127.0.0.1:0', `127.0.0.1:${takenPort}`),
      code: 'MUTUAL_DESTINATION_LISTEN_FAILED',
      flag: 'admin, --admin-listen',
    },
  ]) {
    test(`${name}: ${code} naming the address and flag, then exit 1`, async () => {
      const run = await runMutual(args(), { timeoutMs: 20_000 });
      assert.equal(run.code, 1, `expected exit 1, got ${run.code}; stderr:\n${run.stderr}`);
      assert.ok(
        run.stderr.includes(`error[${code}]: cannot listen on 127.0.0.1:${takenPort} (${flag}): EADDRINUSE`),
        run.stderr,
      );
      assert.doesNotMatch(run.stdout, /listening on/);
    });
  }
});
