import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileIpMatcher, ipBlockProblem } from './ip-block.ts';

test('compileIpMatcher: a client matches blocks of its own family, IPv4-mapped as IPv4 on both sides', () => {
  const cases: Array<[readonly string[], string, boolean]> = [
    [['127.0.0.0/8'], '127.0.0.1', true],
    [['127.0.0.0/8'], '::ffff:127.0.0.1', true],
    [['127.0.0.0/8'], '::FFFF:127.0.0.1', true],
    [['127.0.0.0/8'], '::ffff:7f00:1', true],
    [['127.0.0.0/8'], '0:0:0:0:0:ffff:7f00:1', true],
    [['127.0.0.0/8'], '::ffff:0:127.0.0.1', false],
    [['127.0.0.0/8'], '::127.0.0.1', false],
    [['127.0.0.0/8'], '::1', false],
    [['::ffff:127.0.0.0/104'], '127.0.0.1', true],
    [['::FFFF:7F00:0/104'], '127.9.9.9', true],
    [['::ffff:127.0.0.1'], '127.0.0.1', true],
    [['::ffff:127.0.0.1'], '127.0.0.2', false],
    [['::/0'], '127.0.0.1', false],
    [['::/0'], '::ffff:127.0.0.1', false],
    [['::/0'], '::1', true],
    [['::/80'], '10.1.2.3', false],
    [['::ffff:0:0/96'], '10.1.2.3', true],
    [['0.0.0.0/0'], '::1', false],
    [['0.0.0.0/0'], '::ffff:0:1.2.3.4', false],
    [['0.0.0.0/0'], '::ffff:1.2.3.4', true],
    [['fe80::/10'], 'fe80::1%eth0', true],
    [['FD00::/8'], 'fd00::1', true],
    [['fd00::/8'], 'FD00:0::1', true],
    [['0.0.0.0/0', '::/0'], '', false],
    [['0.0.0.0/0', '::/0'], 'unknown', false],
    [['0.0.0.0/0', '::/0'], '127.000.000.001', false],
    [['0.0.0.0/0', '::/0'], ' 127.0.0.1', false],
  ];
  for (const [blocks, ip, expected] of cases) {
    assert.equal(compileIpMatcher(blocks)(ip), expected, `${JSON.stringify(ip)} in ${blocks.join(', ')}`);
  }
});

test('ipBlockProblem: addresses and CIDRs pass; leading zeros, spaces and bad prefixes do not', () => {
  for (const block of ['10.0.0.0/8', '::ffff:10.0.0.0/104', '::FFFF:a00:0/104', 'fd00::/8', '192.168.0.1'])
    assert.equal(ipBlockProblem(block), undefined, block);
  for (const block of [
    '010.0.0.0/8',
    ' 10.0.0.0/8',
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/8/8',
    '10.0.0.0/-1',
    '',
  ])
    assert.ok(ipBlockProblem(block), block);
});
