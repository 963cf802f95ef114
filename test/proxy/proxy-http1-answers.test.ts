// What a sidecar answers, itself, to HTTP/1 requests it will not forward as they are: two Host
// headers (400 in both directions), CONNECT (501, never a silent close), and `Expect: 100-continue`
// on a request policy denies (403 without ever inviting the body). Raw bytes and real curl go to a
// real sidecar pair over mTLS, to a PERMISSIVE port in plaintext and through the outbound; the app
// records every request it gets, and the sidecars' metrics must count every answer.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { metricValue } from '../../src/testing/mesh-pki.ts';
import { type ExchangePart, type Http1Pair, startHttp1Pair, statuses, VIAS, type Via } from './http1-pair.ts';

const DENY_UPLOADS = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-uploads, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/denied*"] } }]
`;

let pair: Http1Pair;
/** `METHOD target bytes` of every request an app received. */
const seen: string[] = [];

function app(request: IncomingMessage, response: ServerResponse) {
  let bytes = 0;
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  request.on('end', () => {
    seen.push(`${request.method} ${request.url} ${bytes}`);
    response.end(`app got ${bytes} bytes`);
  });
}

before(async () => {
  pair = await startHttp1Pair({
    name: 'mutual-http1-answers-',
    policies: { 'emoji.yaml': DENY_UPLOADS },
    createApp: () => {
      const server = createServer(app);
      // An app that is a forward proxy: a CONNECT reaching it would be tunnelled.
      server.on('connect', (request: IncomingMessage, socket: Socket) => {
        seen.push(`CONNECT ${request.url}`);
        socket.end('HTTP/1.1 200 Connection established\r\n\r\n');
      });
      return server;
    },
  });
});

after(async () => {
  await pair?.stop();
});

const exchange = (via: Via, parts: ExchangePart[]) => pair.exchange(via, parts);

/** The requests the apps got before a request for `marker`, which comes last once all else is in. */
async function seenUntil(via: Via, marker: string): Promise<string[]> {
  const answer = await exchange(via, [`GET ${marker} HTTP/1.1\r\nHost: emoji\r\nConnection: close\r\n\r\n`]);
  assert.deepEqual(statuses(answer), ['200'], answer);
  const found = seen.splice(0);
  assert.equal(found.at(-1), `GET ${marker} 0`);
  return found.slice(0, -1);
}

/** The sidecar that answers `via`'s requests, and the metric it counts them in. */
const counter = (via: Via) =>
  via === 'outbound'
    ? { proxy: pair.client, metric: 'mutual_outbound_http_requests_total' }
    : { proxy: pair.server, metric: 'mutual_inbound_http_requests_total' };

async function counted(via: Via, labels: Record<string, string>): Promise<number> {
  const { proxy, metric } = counter(via);
  const tls = via === 'plaintext' ? 'no_identity' : 'true';
  return metricValue(await proxy.metrics(), metric, { ...labels, tls });
}

for (const via of VIAS) {
  test(`${via}: two Host headers get a 400 saying so, the connection closes and nothing reaches the app`, async () => {
    seen.length = 0;
    const before = await counted(via, { method: 'POST', status_code: '400' });
    // A body and a pipelined request behind it: neither may reach the app.
    const answer = await exchange(via, [
      'POST /two-hosts HTTP/1.1\r\nHost: emoji\r\nHost: other\r\nContent-Length: 4\r\n\r\nBODYGET /pipelined HTTP/1.1\r\nHost: emoji\r\n\r\n',
    ]);
    assert.deepEqual(statuses(answer), ['400'], answer);
    assert.match(answer, /^x-mutual-proxy-error: bad_request\r$/im);
    assert.match(answer, /^connection: close\r$/im);
    assert.match(answer, /mutual: bad request: the request has 2 Host headers; send one\n/);
    assert.deepEqual(await seenUntil(via, `/after-two-hosts-${via}`), []);
    assert.equal(await counted(via, { method: 'POST', status_code: '400' }), before + 1);
  });

  test(`${via}: CONNECT gets a 501 that explains, is counted, and never reaches the app`, async () => {
    seen.length = 0;
    const before = await counted(via, { method: 'CONNECT', status_code: '501' });
    // The bytes a client sends for the tunnel right behind its request are dropped.
    const answer = await exchange(via, [
      'CONNECT emoji.demo:443 HTTP/1.1\r\nHost: emoji.demo:443\r\n\r\n\x16\x03\x01 not a request',
    ]);
    assert.deepEqual(statuses(answer), ['501'], answer);
    assert.match(answer, /^HTTP\/1\.1 501 Not Implemented\r\n/);
    assert.match(answer, /^x-mutual-proxy-error: connect_not_supported\r$/im);
    assert.match(answer, /^connection: close\r$/im);
    assert.match(answer, /\r\n\r\nmutual: CONNECT is not supported: .*--opaque-ports.*\n$/);
    assert.deepEqual(await seenUntil(via, `/after-connect-${via}`), []);
    assert.equal(await counted(via, { method: 'CONNECT', status_code: '501' }), before + 1);
  });
}

for (const via of ['mtls', 'plaintext'] as const) {
  test(`${via}: Expect: 100-continue on a denied request gets the 403 and never a 100 Continue`, async () => {
    seen.length = 0;
    // The client waits for 100 Continue before sending its body; the 403 must come without it.
    const answer = await exchange(via, [
      'POST /denied/upload HTTP/1.1\r\nHost: emoji\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
    ]);
    assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/, answer);
    assert.deepEqual(statuses(answer), ['403'], answer);
    assert.doesNotMatch(answer, /100 Continue/);
    // Whether the client sends the body now is unknown, so the connection cannot go on.
    assert.match(answer, /^connection: close\r$/im);
    assert.match(answer, /RBAC: access denied$/);
    assert.deepEqual(await seenUntil(via, `/after-denied-${via}`), []);
  });

  test(`${via}: Expect: 100-continue on an allowed request gets 100 Continue, then the app's answer`, async () => {
    seen.length = 0;
    const answer = await exchange(via, [
      'POST /upload HTTP/1.1\r\nHost: emoji\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n',
      (text) => text.includes('\r\n\r\n'),
      'HELLO',
    ]);
    assert.match(answer, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/, answer);
    assert.match(answer, /app got 5 bytes$/);
    assert.deepEqual(await seenUntil(via, `/after-allowed-${via}`), ['POST /upload 5']);
  });
}

const hasCurl = (() => {
  try {
    return /^curl /.test(execFileSync('curl', ['--version'], { encoding: 'utf8', stdio: 'pipe' }));
  } catch {
    return false;
  }
})();

test('curl --data-binary @2MiB with Expect: 100-continue: a denied upload is refused before any body is sent', {
  skip: hasCurl ? false : 'curl is not installed',
}, async () => {
  const upload = join(pair.dir, 'upload.bin');
  await writeFile(upload, Buffer.alloc(2 * 1024 * 1024, 'x'));
  const curl = async (via: 'mtls' | 'plaintext', path: string) => {
    const url =
      via === 'mtls'
        ? `https://127.0.0.1:${pair.server.inbound[0]!.port}${path}`
        : `http://127.0.0.1:${pair.server.inbound[1]!.port}${path}`;
    // -k: the sidecar's certificate names a SPIFFE ID, not 127.0.0.1; the client certificate is web's.
    const tls = via === 'mtls' ? ['-k', '--cert', pair.web.certFile, '--key', pair.web.keyFile] : [];
    const { stdout, stderr } = await promisify(execFile)(
      'curl',
      [
        ...['-sS', '-v', '-m', '20', ...tls, '-H', 'Expect: 100-continue', '--data-binary', `@${upload}`],
        url,
      ],
      { encoding: 'utf8' },
    );
    return { stdout, stderr, continued: /^< HTTP\/1\.1 100 Continue/m.test(stderr) };
  };
  for (const via of ['mtls', 'plaintext'] as const) {
    seen.length = 0;
    const denied = await curl(via, '/denied/big');
    assert.equal(denied.continued, false, denied.stderr);
    assert.match(denied.stderr, /^< HTTP\/1\.1 403 Forbidden/m);
    assert.equal(denied.stdout, 'RBAC: access denied');
    const allowed = await curl(via, '/big');
    assert.equal(allowed.continued, true, allowed.stderr);
    assert.match(allowed.stderr, /^< HTTP\/1\.1 200 OK/m);
    assert.equal(allowed.stdout, `app got ${2 * 1024 * 1024} bytes`);
    assert.deepEqual(seen, [`POST /big ${2 * 1024 * 1024}`]);
  }
});
