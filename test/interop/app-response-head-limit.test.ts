// HTTP/1 heads past Node's 16 KiB default: an app's answer carrying 20 KiB of headers (a large
// Set-Cookie or Content-Security-Policy), which curl takes straight from the app, and a client's
// 40 KiB request head reach the other end through the inbound and through a sidecar pair, as over
// HTTP/2. Before, the client got `502 app_unavailable`, "the app on port N did not answer: Headers
// Overflow Error" (the app had answered). Past the sidecar's 64 KiB limit the 502 says so.
// Needs curl (Debian curl).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);
let hasCurl = true;
try {
  execFileSync('curl', ['--version'], { stdio: 'pipe' });
} catch {
  hasCurl = false;
}

const COOKIE = `session=${'c'.repeat(20 * 1024)}`;
const HUGE_COOKIE = `session=${'c'.repeat(70 * 1024)}`;
let dir: string;
let web: WorkloadFiles;
let app: Server;
let server: ProxyProcess;
let client: ProxyProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-head-limit-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  web = await pki.workload('web');
  app = createServer({ maxHeaderSize: 128 * 1024 }, (request, response) => {
    if (request.url === '/huge')
      return void response.writeHead(200, { 'set-cookie': HUGE_COOKIE }).end('ok\n');
    const big = request.headers['x-big'];
    response
      .writeHead(200, { 'set-cookie': COOKIE })
      .end(big === undefined ? 'ok\n' : `x-big ${big.length}\n`);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
    ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
  ]);
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  app?.close();
  app?.closeAllConnections();
  await rm(dir, { recursive: true, force: true });
});

/** curl's status line and whether the cookie came back whole. */
async function fetchCookie(args: string[]): Promise<{ status: string; cookie: boolean; body: string }> {
  const { stdout } = await run('curl', ['-sS', '-i', '-m', '10', ...args]);
  return {
    status: stdout.slice(0, stdout.indexOf('\r\n')),
    cookie: stdout.includes(`set-cookie: ${COOKIE}\r\n`),
    body: stdout.slice(stdout.indexOf('\r\n\r\n') + 4),
  };
}

test('curl takes the 20 KiB answer head straight from the app', {
  skip: !hasCurl && 'needs curl',
}, async () => {
  const direct = await fetchCookie([`http://127.0.0.1:${(app.address() as AddressInfo).port}/`]);
  assert.deepEqual(direct, { status: 'HTTP/1.1 200 OK', cookie: true, body: 'ok\n' });
});

test('a 20 KiB answer head reaches a client through the inbound and through a sidecar pair', {
  skip: !hasCurl && 'needs curl',
}, async () => {
  const direct = await fetchCookie([
    ...['-k', '--cert', web.certFile, '--key', web.keyFile],
    `https://127.0.0.1:${server.inbound[0]!.port}/`,
  ]);
  assert.deepEqual(direct, { status: 'HTTP/1.1 200 OK', cookie: true, body: 'ok\n' });
  const paired = await fetchCookie([`http://127.0.0.1:${client.outbound[0]!.port}/`]);
  assert.deepEqual(paired, { status: 'HTTP/1.1 200 OK', cookie: true, body: 'ok\n' });
});

test('a 40 KiB request head reaches the app through a sidecar pair', {
  skip: !hasCurl && 'needs curl',
}, async () => {
  const paired = await fetchCookie([
    '-H',
    `x-big: ${'b'.repeat(40 * 1024)}`,
    `http://127.0.0.1:${client.outbound[0]!.port}/`,
  ]);
  assert.deepEqual(paired, { status: 'HTTP/1.1 200 OK', cookie: true, body: `x-big ${40 * 1024}\n` });
});

test('an answer head over 64 KiB is a 502 that says so, not "did not answer"', {
  skip: !hasCurl && 'needs curl',
}, async () => {
  const { stdout } = await run('curl', [
    ...['-sS', '-i', '-m', '10', '-k', '--cert', web.certFile, '--key', web.keyFile],
    `https://127.0.0.1:${server.inbound[0]!.port}/huge`,
  ]);
  assert.match(stdout, /^HTTP\/1.1 502 /);
  assert.match(stdout, /x-mutual-proxy-error: app_answer_too_large/);
  assert.match(stdout, /answered with headers over 64 KiB/);
});
