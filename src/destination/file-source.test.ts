import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { throwsCode } from '../testing/expect-error.ts';
import { createFileSource, parseDestinationTable } from './file-source.ts';

const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
const DB = 'spiffe://cluster.local/ns/demo/sa/db';

// A loopback mesh: every service on 127.0.0.1, each on ports of its own.
const SHARED = `destinations:
  - { address: 127.0.0.1, serverId: ${WEB}, names: [web], ports: [7001] }
  - { address: 127.0.0.1, serverId: ${DB}, names: [db], ports: [{ port: 7002, protocol: opaque }] }
  - { address: 127.0.0.2, serverId: ${WEB}, ports: [] }
  - { address: 127.0.0.2, serverId: ${DB} }
`;

test('entries may share an address or a name on different ports; each port answers for its own entry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-file-source-'));
  try {
    const file = join(dir, 'destinations.yaml');
    await writeFile(file, SHARED);
    const source = await createFileSource(file);
    try {
      const cases: Array<[string, number, object]> = [
        ['127.0.0.1', 7001, { meshed: true, serverId: WEB, protocol: 'detect' }],
        ['127.0.0.1', 7002, { meshed: true, serverId: DB, protocol: 'opaque' }],
        ['127.0.0.1', 7003, { meshed: false, reason: 'unknown-port' }],
        // An entry for every port answers where no entry lists the port.
        ['127.0.0.2', 5432, { meshed: true, serverId: DB, protocol: 'detect' }],
      ];
      for (const [address, port, expected] of cases) {
        const answer = source.resolveAddress(address, port);
        assert.deepEqual(
          { ...answer, kind: undefined, name: undefined },
          { ...expected, kind: undefined, name: undefined },
          `${address}:${port}`,
        );
      }
      assert.equal(source.resolveName('db', 7002)?.serverId, DB);
      assert.equal(source.resolveName('db', 7001)?.reason, 'unknown-port');
      assert.equal(source.resolveAddress('127.0.0.9', 7001), undefined);
    } finally {
      source.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('two entries claiming one address or name on the same port are refused, naming both', () => {
  const cases: Array<[string, RegExp]> = [
    [
      `destinations:
  - { address: 127.0.0.1, serverId: ${WEB}, ports: [7001, 7002] }
  - { address: 127.0.0.1, serverId: ${DB}, ports: [7002] }`,
      /destinations\[1\]: 127\.0\.0\.1 \(7002\) is also in destinations\[0\]/,
    ],
    [
      `destinations:
  - { address: 10.0.0.1, serverId: ${WEB} }
  - { address: 10.0.0.1, serverId: ${DB} }`,
      /destinations\[1\]: 10\.0\.0\.1 \(every port\) is also in destinations\[0\]/,
    ],
    [
      `destinations:
  - { address: 10.0.0.1, serverId: ${WEB}, names: [web], ports: [80] }
  - { address: 10.0.0.2, serverId: ${DB}, names: [web], ports: [80] }`,
      /destinations\[1\]: web \(80\) is also in destinations\[0\]/,
    ],
    [
      `destinations:
  - { address: 127.0.0.1, serverId: ${WEB}, ports: [7001] }
  - { address: "::FFFF:7f00:1", serverId: ${DB}, ports: [7001] }`,
      /destinations\[1\]: 127\.0\.0\.1 \(7001\) is also in destinations\[0\]/,
    ],
  ];
  for (const [text, message] of cases) {
    throwsCode(
      () => parseDestinationTable(text, 'table.yaml'),
      'MUTUAL_DESTINATION_TABLE_INVALID',
      '',
      message,
    );
  }
});
