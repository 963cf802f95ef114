// Test support: `mutual destination serve` as a real process, with a test PKI (its own SVID and a
// client's, web) and a one-entry table (198.18.0.3 is web), for the tests of its API's limits.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { type MutualDaemon, startMutualDaemon } from './run-mutual.ts';

export interface DestinationFixture {
  /** The client's SVID files (spiffe://cluster.local/ns/demo/sa/web). */
  readonly web: WorkloadFiles;
  /** `destination serve` with the fixture's table and credentials, loopback ports from 0, then `extra`. */
  serveArgs(extra?: readonly string[]): string[];
  /** Starts it (under `prlimit --nofile=N:N` with `fileLimit`); stopped by close(). */
  start(extra?: readonly string[], options?: { fileLimit?: number }): Promise<MutualDaemon>;
  /** Its admin port's /metrics. */
  metrics(daemon: MutualDaemon): Promise<string>;
  close(): Promise<void>;
}

export async function createDestinationFixture(prefix: string): Promise<DestinationFixture> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const pki = await createTestPki(join(dir, 'pki'));
  const own = await pki.workload('destination', { ns: 'mutual-system' });
  const web = await pki.workload('web');
  await writeFile(
    join(dir, 'table.yaml'),
    'destinations:\n  - address: 198.18.0.3\n    serverId: spiffe://cluster.local/ns/demo/sa/web\n',
  );
  const daemons: MutualDaemon[] = [];
  const serveArgs = (extra: readonly string[] = []) => [
    ...['destination', 'serve', '--file', join(dir, 'table.yaml')],
    ...['--cert', own.certFile, '--key', own.keyFile, '--bundle', own.bundleFile],
    ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ...extra,
  ];
  return {
    web,
    serveArgs,
    async start(extra = [], options = {}) {
      const daemon = await startMutualDaemon(serveArgs(extra), 'destination service', options);
      daemons.push(daemon);
      return daemon;
    },
    async metrics(daemon) {
      return (await fetch(new URL('/metrics', daemon.adminUrl))).text();
    },
    async close() {
      for (const daemon of daemons) await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
