// Plain HTTP sent to the identity service's HTTPS port (curl http://, a client set up with
// http:// by mistake) gets a plain-text 400 naming the code and saying to use https://, then the
// connection closes; before, the client saw an empty reply. Bytes that are neither HTTP nor TLS
// are still just closed, and TLS clients are served as before, oversized headers' 431 included.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertPlainHttpAnswer, curl, curlMissing, rawTcp, rawTls } from './plain-http-client.ts';
import { createCa, type IdentityServiceProcess, startIdentityService } from './run-mutual.ts';

let dir: string;
let service: IdentityServiceProcess;
let bundlePem: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-identity-plain-http-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

const port = () => Number(service.apiUrl.port);

const host = () => service.apiUrl.hostname;

function assertAnswer(answer: string, what: string): void {
  assertPlainHttpAnswer(
    answer,
    new RegExp(
      `^error\\[MUTUAL_IDENTITY_PLAIN_HTTP\\]: plain HTTP was sent to the identity service, whose port ${port()} speaks only HTTPS \\(TLS 1\\.3\\): use https:// instead of http://\\n  hint: .*https://`,
    ),
    what,
  );
}

test('curl http:// to the HTTPS port gets a plain-text 400 saying to use https://', {
  skip: curlMissing,
}, async () => {
  // -i: the status line and headers too.
  assertAnswer(await curl(['-i', `http://127.0.0.1:${port()}/v1/bundle`]), 'curl GET');
  const posted = await curl([
    ...['-i', '-H', 'content-type: application/json'],
    ...['--data', JSON.stringify({ token: 'x', csr: 'y' }), `http://127.0.0.1:${port()}/v1/certify`],
  ]);
  assertAnswer(posted, 'curl POST');
});

test('a raw plain HTTP request is answered and closed; CONNECT too', async () => {
  for (const request of [
    'GET /v1/bundle HTTP/1.1\r\nHost: identity\r\n\r\n',
    'HEAD /v1/bundle HTTP/1.0\r\n\r\n',
    'CONNECT identity:8443 HTTP/1.1\r\nHost: identity:8443\r\n\r\n',
  ]) {
    // The server closes after the answer: without that, 'close' would never come.
    assertAnswer(await rawTcp(port(), host(), request), request.slice(0, 20));
  }
  const audit = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  assert.match(audit, /"reason":"MUTUAL_IDENTITY_PLAIN_HTTP","message":"plain HTTP was sent/);
});

test('bytes that are neither HTTP nor TLS are closed without an answer; TLS clients are still served', async () => {
  for (const garbage of [Buffer.from('hello there\r\n\r\n'), Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]) {
    assert.equal(await rawTcp(port(), host(), garbage), '', `no answer to ${garbage.toString('hex')}`);
  }
  const bundle = await rawTls(
    { host: host(), port: port(), ca: bundlePem },
    'GET /v1/bundle HTTP/1.1\r\nHost: identity\r\nConnection: close\r\n\r\n',
  );
  assert.match(bundle, /^HTTP\/1\.1 200 OK\r\n[\s\S]*-----BEGIN CERTIFICATE-----/);
  // Oversized headers over TLS still get their 431 (an attempt that peeked at every
  // connection's first bytes lost it).
  const huge = await rawTls(
    { host: host(), port: port(), ca: bundlePem },
    `POST /v1/certify HTTP/1.1\r\nHost: identity\r\ncontent-type: application/json\r\nX-Huge: ${'a'.repeat(20_000)}\r\n\r\n`,
  );
  assert.match(huge, /^HTTP\/1\.1 431 /);
  assert.match(huge, /MUTUAL_IDENTITY_REQUEST_TOO_LARGE/);
});
