// The admin server on a real socket against hostile clients: request targets that are not URLs,
// garbage, oversized headers, wrong methods, a route that throws. Each gets its own answer and the
// server keeps answering. And /metrics stays valid Prometheus text whatever the label values hold.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { after, before, test } from 'node:test';
import { parsePrometheusText } from '../mesh/prometheus-text.ts';
import { createRegistry } from '../metrics/index.ts';
import { createProxyMetrics } from '../proxy/metrics.ts';
import { parseStrictPrometheusText } from '../testing/strict-prometheus-text.ts';
import { createAdminServer, requestPath } from './index.ts';

const registry = createRegistry();
const metrics = createProxyMetrics(registry);
let server: Server;
let port: number;

before(async () => {
  server = createAdminServer({
    registry,
    notReadyReason: () => undefined,
    routes: {
      'GET /identity': (_request, response) => response.end('{}\n'),
      'POST /shutdown': (_request, response) => response.writeHead(202).end('draining\n'),
      'GET /boom': () => {
        throw new Error('a bug in a route');
      },
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

/** Sends raw bytes, resolves with everything the server sent before it closed. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
    socket.end(bytes);
  });
}
const statusLine = (answer: string) => answer.slice(0, answer.indexOf('\r\n'));

test('requestPath: a path, or undefined for targets that are not URLs', () => {
  assert.equal(requestPath('/metrics?x=1'), '/metrics');
  assert.equal(requestPath(undefined), '/');
  for (const target of ['//[', 'http://[', '//a:b', '//:99999', '//%'])
    assert.equal(requestPath(target), undefined);
});

test('hostile requests each get an answer and the server keeps serving', async () => {
  const cases: Array<[string, string, RegExp?]> = [
    // Node hands these targets to the handler; new URL() throws on them (it used to kill the daemon).
    [
      'GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'HTTP/1.1 400 Bad Request',
      /bad request target "\/\/\["/,
    ],
    ['GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
    ['\x16\x03\x01\x00\xa5garbage\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
    [
      `GET /live HTTP/1.1\r\nHost: x\r\n${'X-Big: a\r\n'.repeat(1000)}${'X-Huge: '.padEnd(20_000, 'b')}\r\n\r\n`,
      'HTTP/1.1 431 Request Header Fields Too Large',
    ],
    [`GET /live?${'q'.repeat(15_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'HTTP/1.1 200 OK'],
    [
      'POST /live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      'HTTP/1.1 405 Method Not Allowed',
    ],
    ['DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'HTTP/1.1 405 Method Not Allowed'],
    [
      'GET /shutdown HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'HTTP/1.1 405 Method Not Allowed',
      /allow: POST\r\n[\s\S]*use POST for \/shutdown/,
    ],
    [
      'PUT /identity HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      'HTTP/1.1 405 Method Not Allowed',
      /allow: GET\r\n/,
    ],
    ['GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'HTTP/1.1 404 Not Found'],
    [
      'GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'HTTP/1.1 500 Internal Server Error',
      /a bug in a route/,
    ],
  ];
  for (const [request, status, body] of cases) {
    const answer = await raw(request);
    assert.equal(statusLine(answer), status, JSON.stringify(request.slice(0, 40)));
    if (body) assert.match(answer, body);
    assert.equal(
      statusLine(await raw('GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')),
      'HTTP/1.1 200 OK',
    );
  }
});

test('/metrics is valid Prometheus text when label values hold quotes, backslashes, newlines and HTML', async () => {
  const hostile = [
    'spiffe://example.org/ns/a"b',
    'back\\slash\\',
    'two\nlines',
    '"},evil="1"} 999\nmutual_fake 1',
    "<img src=x onerror=alert(1)>&amp;'",
    '\\n is not a newline',
  ];
  for (const [index, value] of hostile.entries()) {
    metrics.authorizations.inc({ decision: 'deny', policy: value, client_id: `c${index}`, port: '1' });
    metrics.outboundRefused.inc({ reason: 'not_meshed', destination: value });
  }
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  const text = await response.text();
  const samples = parseStrictPrometheusText(text);
  assert.ok(!samples.some((sample) => sample.name === 'mutual_fake'), 'a label value forged a sample');
  const policies = samples
    .filter((sample) => sample.name === 'mutual_authorization_decisions_total')
    .map((sample) => sample.labels.policy);
  assert.deepEqual(policies, hostile);
  const destinations = samples
    .filter((sample) => sample.name === 'mutual_outbound_refused_total')
    .map((sample) => sample.labels.destination);
  assert.deepEqual(destinations, hostile);
  // The mesh's own reader (mutual check, the dashboard) reads the same values back.
  assert.deepEqual(
    parsePrometheusText(text)
      .filter((sample) => sample.name === 'mutual_authorization_decisions_total')
      .map((sample) => sample.labels.policy),
    hostile,
  );
});
