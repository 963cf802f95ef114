// The mesh's port allocation: distinct free ports outside the kernel's ephemeral range, so nothing
// else is handed them between allocation and the moment the mesh's processes bind them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { allocateLoopbackPorts, portsOutsideEphemeralRange, readEphemeralPortRange } from './processes.ts';

describe('allocateLoopbackPorts', () => {
  test('distinct ports, none in the ephemeral range, each free to bind', async () => {
    const ephemeral = readEphemeralPortRange();
    const ports = await allocateLoopbackPorts(40);
    assert.equal(new Set(ports).size, 40);
    if (ephemeral && portsOutsideEphemeralRange(ephemeral)) {
      for (const port of ports)
        assert.ok(
          port < ephemeral.low || port > ephemeral.high,
          `port ${port} in ${ephemeral.low}-${ephemeral.high}`,
        );
    }
    const servers: Server[] = [];
    try {
      for (const port of ports) {
        const server = createServer();
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', resolve);
        });
      }
    } finally {
      for (const server of servers) server.close();
    }
  });

  test('a port something already listens on is skipped', async (t) => {
    const range = portsOutsideEphemeralRange(readEphemeralPortRange());
    if (!range) return t.skip('the ephemeral range leaves no ports outside it');
    // Take a port in the range, then make the first random pick land on it.
    let taken: Server | undefined;
    let takenPort = 0;
    for (let port = range.low; !taken && port <= range.high; port++) {
      const server = createServer();
      const isListening = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => resolve(true));
      });
      if (isListening) {
        taken = server;
        takenPort = (server.address() as AddressInfo).port;
      }
    }
    assert.ok(taken, 'a free port in the range to take');
    try {
      let picks = 0;
      const pickTakenFirst = () =>
        picks++ === 0 ? (takenPort - range.low + 0.5) / (range.high - range.low + 1) : Math.random();
      const ports = await allocateLoopbackPorts(1, '127.0.0.1', pickTakenFirst);
      assert.ok(picks >= 2, 'tried again after the taken port');
      assert.notEqual(ports[0], takenPort);
    } finally {
      taken.close();
    }
  });
});

describe('allocateLoopbackPorts under a low file limit', () => {
  // An all-pairs mesh of 40 services needs 1,684 ports; they were all held open at once.
  test('more ports than the process may open files: allocated one at a time', async () => {
    const script = `import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, 'processes.js')).href)}).then(async ({ allocateLoopbackPorts }) => {
      const ports = await allocateLoopbackPorts(600);
      process.stdout.write(String(new Set(ports).size));
    })`;
    const run = spawnSync('prlimit', ['--nofile=256:256', process.execPath, '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, '600');
  });
});

describe('portsOutsideEphemeralRange', () => {
  test("Linux's default range: the ports below it, from 20000", () => {
    assert.deepEqual(portsOutsideEphemeralRange({ low: 32_768, high: 60_999 }), {
      low: 20_000,
      high: 32_767,
    });
  });
  test('a range starting low: the ports above it', () => {
    assert.deepEqual(portsOutsideEphemeralRange({ low: 10_000, high: 50_000 }), {
      low: 50_001,
      high: 65_535,
    });
  });
  test('a range covering nearly everything: none, so the kernel picks', () => {
    assert.equal(portsOutsideEphemeralRange({ low: 1_024, high: 65_000 }), undefined);
  });
  test('unknown (no /proc): as if the default range', () => {
    assert.deepEqual(portsOutsideEphemeralRange(undefined), { low: 20_000, high: 32_767 });
  });
});
