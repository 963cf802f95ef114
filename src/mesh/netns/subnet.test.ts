import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listensOn } from './listening.ts';
import { candidateSubnets, cidrsIn, meshSubnet, overlaps, podAddress, SUBNET_COUNT } from './subnet.ts';

test('subnets are the /24s of 198.18.0.0/15, the host at .1 and pods from .2', () => {
  assert.deepEqual(meshSubnet(0), {
    index: 0,
    cidr: '198.18.0.0/24',
    hostAddress: '198.18.0.1',
    prefixLength: 24,
  });
  assert.equal(meshSubnet(7).cidr, '198.18.7.0/24');
  assert.equal(meshSubnet(256).cidr, '198.19.0.0/24');
  assert.equal(meshSubnet(SUBNET_COUNT - 1).hostAddress, '198.19.255.1');
  assert.throws(() => meshSubnet(SUBNET_COUNT), RangeError);
  assert.equal(podAddress(meshSubnet(7), 0), '198.18.7.2');
  assert.equal(podAddress(meshSubnet(7), 252), '198.18.7.254');
  assert.throws(() => podAddress(meshSubnet(7), 253), /253 pods/);
});

test('candidates start at the given index, wrap around and skip what routes and addresses cover', () => {
  const none = candidateSubnets(510, []);
  assert.deepEqual(
    none.slice(0, 3).map((s) => s.index),
    [510, 511, 0],
  );
  assert.equal(none.length, SUBNET_COUNT);
  const used = candidateSubnets(5, ['198.18.5.1/24', '198.18.6.0/23', '10.0.0.1/8', '198.18.9.77']);
  assert.deepEqual(
    used.slice(0, 3).map((s) => s.index),
    [8, 10, 11],
  );
  // A route over the whole range leaves nothing.
  assert.deepEqual(candidateSubnets(0, ['198.18.0.0/15']), []);
  assert.deepEqual(candidateSubnets(0, ['198.0.0.0/8']), []);
});

test('overlap and the CIDRs in ip output', () => {
  assert.equal(overlaps('198.18.7.200/24', meshSubnet(7)), true);
  assert.equal(overlaps('198.18.8.1/24', meshSubnet(7)), false);
  assert.equal(overlaps('198.18.0.0/15', meshSubnet(300)), true);
  assert.equal(overlaps('not-an-address', meshSubnet(7)), false);
  const text = `2: eth0    inet 10.1.2.3/16 brd 10.1.255.255 scope global eth0\ndefault via 10.1.0.1 dev eth0\n198.18.4.0/24 dev mu1-host proto kernel`;
  assert.deepEqual(cidrsIn(text), ['10.1.2.3/16', '10.1.255.255', '10.1.0.1', '198.18.4.0/24']);
});

test('listensOn reads LISTEN sockets from /proc/net/tcp and tcp6', () => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  2103        0 1 1',
    '   1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000  2103        0 2 1',
  ].join('\n');
  assert.equal(listensOn(tcp, 8080), true);
  assert.equal(listensOn(tcp, 8081), false, 'established, not listening');
  const tcp6 = [
    '  sl  local_address                         remote_address                        st',
    '   0: 00000000000000000000000000000000:115B 00000000000000000000000000000000:0000 0A',
  ].join('\n');
  assert.equal(listensOn(tcp6, 4443), true);
  assert.equal(listensOn('', 8080), false);
});
