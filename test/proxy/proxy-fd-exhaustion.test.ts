// A sidecar pair out of file descriptors (prlimit --nofile=128 on each proxy, then 300 idle
// connections at the client's outbound and at the server's inbound): each proxy stays up, shows
// its descriptors in use against its limit (process_open_fds, process_max_fds: libuv accepts and
// closes the connections past the limit, unseen by the proxy), names a failed outbound connect as
// its own lack of resources (not a TLS protocol error of the destination), logged once, and serves
// again once the clients have gone.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { metricValue, type ProxyProcess } from '../../src/testing/mesh-pki.ts';
import { startHttp1Pair, statuses } from './http1-pair.ts';

const REQUEST = 'GET / HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n';

/** Polls `check` (a failure counts as false: the admin port may be out of descriptors too) for 25 s. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function flood(port: number, count: number): Socket[] {
  return Array.from({ length: count }, () => connect(port, '127.0.0.1').on('error', () => {}));
}

const linesOf = (proxy: ProxyProcess, message: string) =>
  proxy
    .output()
    .split('\n')
    .filter((line) => line.includes(`"msg":"${message}`));

test('out of file descriptors: no crash, one log line, counted, served again', {
  timeout: 60_000,
}, async () => {
  const pair = await startHttp1Pair({
    name: 'mutual-fd-',
    createApp: () => createServer((_request, response) => response.end('ok\n')),
  });
  const held: Socket[] = [];
  try {
    for (const proxy of [pair.server, pair.client])
      execFileSync('prlimit', ['--pid', String(proxy.child.pid), '--nofile=128:128']);

    // Near the limit, the admin port still answers: the descriptors in use, against the limit.
    const before = metricValue(await pair.server.metrics(), 'process_open_fds');
    assert.ok(before > 0, 'process_open_fds is exported');
    for (let i = 0; i < 40; i++) held.push(await pair.open('mtls'));
    const near = await pair.server.metrics();
    assert.equal(metricValue(near, 'process_max_fds'), 128);
    assert.ok(metricValue(near, 'process_open_fds') >= before + 40, near);

    // At the limit: libuv accepts and closes what does not fit, the proxy never hears of it (and
    // its admin port is out of reach too); what it does notice is its own connects failing.
    held.push(...flood(pair.client.outbound[0]!.port, 300), ...flood(pair.server.inbound[0]!.port, 300));
    await eventually(
      async () =>
        metricValue(await pair.client.metrics(), 'mutual_outbound_refused_total', {
          reason: 'local_resources',
        }) > 0,
      'the client sidecar to refuse outbound connects for local_resources',
    );
    const clientMetrics = await pair.client.metrics();
    assert.equal(
      metricValue(clientMetrics, 'mutual_tls_handshake_failures_total', { reason: 'protocol' }),
      0,
      'running out of descriptors is not a TLS protocol failure',
    );
    for (const proxy of [pair.server, pair.client]) assert.equal(proxy.child.exitCode, null, proxy.output());
    // The first failure at once; the rest only summed up (one line per 10 s).
    const failed = linesOf(pair.client, 'outbound mTLS failed').filter((line) =>
      line.includes('local_resources'),
    );
    assert.ok(failed.length >= 1 && failed.length <= 2, failed.join('\n'));
    assert.match(failed[0]!, /EMFILE/);

    for (const socket of held) socket.destroy();
    await eventually(
      async () => statuses(await pair.exchange('outbound', [REQUEST])).join() === '200',
      'a request through the pair to be served again',
    );
    assert.deepEqual(statuses(await pair.exchange('mtls', [REQUEST])), ['200']);
    for (const proxy of [pair.server, pair.client]) await proxy.untilReady();
  } finally {
    for (const socket of held) socket.destroy();
    await pair.stop();
  }
});

test('a request the inbound cannot pass to the app for want of descriptors is answered local_resources, not app_unavailable', {
  timeout: 60_000,
}, async () => {
  // The app closes each connection, so every request needs a new one from the sidecar.
  const pair = await startHttp1Pair({
    name: 'mutual-fd-app-',
    createApp: () =>
      createServer((_request, response) => response.writeHead(200, { connection: 'close' }).end('ok\n')),
  });
  const held: Socket[] = [];
  try {
    const client = await pair.open('mtls');
    held.push(client);
    let text = '';
    client.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    const answer = async () => {
      await eventually(async () => /\r\n\r\n[\s\S]*\n/.test(text), 'an answer');
      const got = text;
      text = '';
      return got;
    };
    client.write('GET / HTTP/1.1\r\nhost: emoji\r\n\r\n');
    assert.match(await answer(), /^HTTP\/1\.1 200/);

    const pid = pair.server.child.pid!;
    execFileSync('prlimit', ['--pid', String(pid), '--nofile=128:128']);
    held.push(...flood(pair.server.inbound[0]!.port, 300));
    await eventually(
      async () => readdirSync(`/proc/${pid}/fd`).length >= 127,
      'the server sidecar to run out',
    );
    client.write('GET / HTTP/1.1\r\nhost: emoji\r\n\r\n');
    const refused = await answer();
    assert.match(refused, /^HTTP\/1\.1 502/);
    assert.match(refused, /x-mutual-proxy-error: local_resources/i);
    assert.match(refused, /EMFILE/);

    for (const socket of held) socket.destroy();
    await eventually(
      async () => statuses(await pair.exchange('mtls', [REQUEST])).join() === '200',
      'the app to be reached again',
    );
  } finally {
    for (const socket of held) socket.destroy();
    await pair.stop();
  }
});
