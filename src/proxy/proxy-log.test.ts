import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProxyLog, sampleKeyOf } from './proxy-log.ts';

const parse = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

test('warnSampled: the first of each key with its fields at once, then one JSON summary per message and interval', async () => {
  const lines: string[] = [];
  const log = createProxyLog(
    (line) => lines.push(line),
    () => 0,
    { sampleIntervalMs: 100 },
  );
  for (let i = 0; i < 50; i++) {
    log.warnSampled('inbound TLS handshake failed', 'reason=protocol', {
      reason: 'protocol',
      client: `10.0.0.${i}`,
    });
  }
  log.warnSampled('inbound TLS handshake failed', 'reason=timeout', {
    reason: 'timeout',
    client: '10.0.0.1',
  });
  log.warnSampled('request denied', 'policy=demo/a client=web', { policy: 'demo/a', client: 'web' });
  log.warnSampled('request denied', 'policy=demo/a client=web', { policy: 'demo/a', client: 'web' });
  log.info('not sampled');
  assert.deepEqual(
    parse(lines).map(({ msg, client }) => [msg, client]),
    [
      ['inbound TLS handshake failed', '10.0.0.0'],
      ['inbound TLS handshake failed', '10.0.0.1'],
      ['request denied', 'web'],
      ['not sampled', undefined],
    ],
  );
  assert.ok(lines.every((line) => line.endsWith('}\n')));
  await sleep(150);
  const summaries = parse(lines.slice(4));
  assert.deepEqual(
    summaries
      .map(({ time: _time, ...rest }) => rest)
      .sort((a, b) => String(a.msg).localeCompare(String(b.msg))),
    [
      {
        level: 'warn',
        msg: 'inbound TLS handshake failed: 49 more in the last 0.1 s',
        more: 49,
        counts: { 'reason=protocol': 49 },
      },
      {
        level: 'warn',
        msg: 'request denied: 1 more in the last 0.1 s',
        more: 1,
        counts: { 'policy=demo/a client=web': 1 },
      },
    ],
  );
});

test('warnSampled: past the keys allowed per message and interval, events are counted as unlisted, not logged', async () => {
  const lines: string[] = [];
  const log = createProxyLog(
    (line) => lines.push(line),
    () => 0,
    { sampleIntervalMs: 100, maxKeysPerMessage: 2 },
  );
  for (let i = 0; i < 10; i++) log.warnSampled('request denied', `client=${i}`, { client: i });
  assert.equal(lines.length, 2);
  await sleep(150);
  assert.deepEqual(JSON.parse(lines[2]!).unlisted, 8);
  assert.equal(JSON.parse(lines[2]!).more, 8);
});

test('sampleKeyOf blanks out what the peer sent, so varying it is not a new kind', () => {
  assert.equal(
    sampleKeyOf('the host "a\\"b.example:99" is not a host name or address with an optional :port'),
    sampleKeyOf('the host "other" is not a host name or address with an optional :port'),
  );
  assert.equal(
    sampleKeyOf('the request has 3 Host headers; send one'),
    'the request has N Host headers; send one',
  );
});
