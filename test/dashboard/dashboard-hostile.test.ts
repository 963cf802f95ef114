// The dashboard's HTTP surface against hostile clients: request targets that are not URLs, huge
// queries and headers, garbage, every method but GET and HEAD, HTML in unknown paths, CORS
// preflights. Each gets a coded answer with the security headers, and the dashboard keeps serving.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_DASHBOARD_LISTEN, isLoopbackHost } from '../../src/cli/dashboard-command.ts';
import { fixedClock } from '../../src/clock.ts';
import { parseListenAddress } from '../../src/config/index.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';

let dir: string;
let dashboard: Dashboard;
let port: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-hostile-'));
  dashboard = await createDashboard(
    { stateDir: join(dir, 'state'), host: '127.0.0.1', port: 0 },
    { clock: fixedClock(Date.parse('2030-01-01T00:00:00Z')) },
  );
  port = Number(new URL(dashboard.url).port);
});

after(async () => {
  dashboard?.destroy();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  base = dashboard.url,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers, agent: false },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Raw bytes in, everything the server sent before closing out (each request says Connection: close or is refused). */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    // A refused oversized request may end in a reset after the answer: what came is kept.
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
    socket.end(bytes);
  });
}

function assertSecurityHeaders(answer: Answer, what: string) {
  assert.match(
    String(answer.headers['content-security-policy']),
    /default-src 'none'; script-src 'self'/,
    what,
  );
  assert.match(String(answer.headers['content-security-policy']), /frame-ancestors 'none'/, what);
  assert.equal(answer.headers['x-content-type-options'], 'nosniff', what);
  assert.equal(answer.headers['cross-origin-resource-policy'], 'same-origin', what);
  assert.equal(answer.headers['cross-origin-opener-policy'], 'same-origin', what);
  assert.equal(answer.headers['access-control-allow-origin'], undefined, what);
}

async function assertStillServing() {
  const overview = await call('GET', '/api/overview');
  assert.equal(overview.status, 200, overview.body);
}

test('by default it listens on loopback only', () => {
  assert.ok(isLoopbackHost(parseListenAddress(DEFAULT_DASHBOARD_LISTEN, '--listen').host));
});

test('every answer carries the CSP and nosniff, and none allows another origin', async () => {
  const cases: Array<[string, string, Record<string, string>, number]> = [
    ['GET', '/', {}, 200],
    ['GET', '/app.js', {}, 200],
    ['HEAD', '/app.css', {}, 200],
    ['GET', '/api/overview', { origin: 'https://evil.example' }, 200],
    [
      'OPTIONS',
      '/api/overview',
      { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
      405,
    ],
    ['POST', '/api/overview', { 'content-type': 'application/json' }, 405],
    ['GET', '/api/nope', {}, 404],
    ['GET', '/api/overview', { host: 'evil.example' }, 421],
  ];
  for (const [method, path, headers, status] of cases) {
    const answer = await call(method, path, headers);
    assert.equal(answer.status, status, `${method} ${path}`);
    assertSecurityHeaders(answer, `${method} ${path}`);
  }
  const page = await call('GET', '/');
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  // The page runs only its own script file: nothing inline for a CSP exception to be needed for.
  assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/);
  assert.doesNotMatch(page.body, /\son[a-z]+=/);
});

test('hostile requests get coded answers and the dashboard keeps serving', async () => {
  for (const target of ['//[', 'http://[', '//a:b', '/\\\\[']) {
    const answer = await raw(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 400 /, target);
    assert.match(answer, /content-security-policy: default-src 'none'/, target);
    const body = JSON.parse(answer.slice(answer.indexOf('{'), answer.lastIndexOf('}') + 1));
    assert.equal(body.error.code, 'MUTUAL_DASHBOARD_NOT_FOUND', target);
    assert.match(body.error.message, /is not a path: open \//, target);
    await assertStillServing();
  }
  for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']) {
    const answer = await raw(
      `${method} /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    assert.match(answer, /^HTTP\/1\.1 405 /, method);
    assert.match(answer, /MUTUAL_DASHBOARD_READ_ONLY/, method);
  }
  // A path full of HTML comes back inside JSON only, never as a page.
  const html = await call('GET', `/<script>window.__pwned=1</script>"'&`);
  assert.equal(html.status, 404);
  assert.equal(html.headers['content-type'], 'application/json; charset=utf-8');
  assert.match(JSON.parse(html.body).error.message, /^no such page: \/%3Cscript%3E/);
  const longQuery = await call('GET', `/api/edges?namespace=${'n'.repeat(15_000)}`);
  assert.equal(longQuery.status, 200);
  const tooLong = await raw(
    `GET /api/edges?namespace=${'n'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
  );
  assert.match(tooLong, /^HTTP\/1\.1 431 /);
  const huge = await raw(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n${'X-Big: a\r\n'.repeat(2000)}\r\n`);
  assert.match(huge, /^HTTP\/1\.1 431 /);
  assert.match(await raw('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n'), /^HTTP\/1\.1 400 /);
  await assertStillServing();
});

test('a dashboard on another loopback address (127.0.0.2) answers at the URL it prints', async () => {
  const other = await createDashboard(
    { stateDir: join(dir, 'state'), host: '127.0.0.2', port: 0 },
    { clock: fixedClock(Date.parse('2030-01-01T00:00:00Z')) },
  );
  try {
    assert.match(other.url, /^http:\/\/127\.0\.0\.2:\d+\/$/);
    assert.equal((await call('GET', '/api/overview', {}, other.url)).status, 200);
    assert.equal((await call('GET', '/api/overview', { host: 'rebound.example' }, other.url)).status, 421);
  } finally {
    other.destroy();
  }
});
