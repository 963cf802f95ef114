// Plain HTTP sent to the identity service's HTTPS port (curl http://, a client set up with
// http:// by mistake) gets a plain-text 400 naming the code and saying to use https://, then the
// connection closes; before, the client saw an empty reply. Bytes that are neither HTTP nor TLS
// are still just closed, and TLS clients are served as before, oversized headers' 431 included.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { promisify } from 'node:util';
import { hasCommand } from '../../src/testing/netns.ts';
import { createCa, type IdentityServiceProcess, startIdentityService } from './run-mutual.ts';

const run = promisify(execFile);
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

/** Writes `bytes` over plain TCP; resolves with all that came back once the server closed. */
function rawTcp(bytes: string | Buffer): Promise<{ received: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = connectTcp(port(), service.apiUrl.hostname);
    let received = '';
    let error: string | undefined;
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    socket.on('error', (cause: NodeJS.ErrnoException) => {
      error = cause.code ?? cause.message;
    });
    socket.on('close', () => resolve({ received, ...(error ? { error } : {}) }));
  });
}

/** Sends `bytes` over TLS 1.3; resolves with what came back before the server closed. */
function rawTls(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({
      host: service.apiUrl.hostname,
      port: port(),
      ca: bundlePem,
      checkServerIdentity: () => undefined,
    });
    let received = '';
    socket.on('secureConnect', () => socket.end(bytes));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

function assertPlainHttpAnswer(answer: string, what: string): void {
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, what);
  assert.match(answer, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/, what);
  assert.match(answer, /\r\nconnection: close\r\n/, what);
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  assert.equal(Number(/content-length: (\d+)/.exec(answer)?.[1]), Buffer.byteLength(body), what);
  assert.match(
    body,
    new RegExp(
      `^error\\[MUTUAL_IDENTITY_PLAIN_HTTP\\]: plain HTTP was sent to the identity service, whose port ${port()} speaks only HTTPS \\(TLS 1\\.3\\): use https:// instead of http://\\n  hint: .*https://`,
    ),
    what,
  );
}

test('curl http:// to the HTTPS port gets a plain-text 400 saying to use https://', {
  skip: hasCommand('curl') ? undefined : 'curl is not installed',
}, async () => {
  // -i: the status line and headers too; curl exits 0 on a 400 without --fail.
  const got = await run('curl', ['-sS', '-i', '-m', '5', `http://127.0.0.1:${port()}/v1/bundle`]);
  assertPlainHttpAnswer(got.stdout, 'curl GET');
  const posted = await run('curl', [
    ...['-sS', '-i', '-m', '5', '-H', 'content-type: application/json'],
    ...['--data', JSON.stringify({ token: 'x', csr: 'y' }), `http://127.0.0.1:${port()}/v1/certify`],
  ]);
  assertPlainHttpAnswer(posted.stdout, 'curl POST');
});

test('a raw plain HTTP request is answered and closed; CONNECT too', async () => {
  for (const request of [
    'GET /v1/bundle HTTP/1.1\r\nHost: identity\r\n\r\n',
    'HEAD /v1/bundle HTTP/1.0\r\n\r\n',
    'CONNECT identity:8443 HTTP/1.1\r\nHost: identity:8443\r\n\r\n',
  ]) {
    // The server closes after the answer: without that, 'close' would never come.
    const { received } = await rawTcp(request);
    assertPlainHttpAnswer(received, request.slice(0, 20));
  }
  const audit = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  assert.match(audit, /"reason":"MUTUAL_IDENTITY_PLAIN_HTTP","message":"plain HTTP was sent/);
});

test('bytes that are neither HTTP nor TLS are closed without an answer; TLS clients are still served', async () => {
  for (const garbage of [Buffer.from('hello there\r\n\r\n'), Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]) {
    const { received } = await rawTcp(garbage);
    assert.equal(received, '', `no answer to ${garbage.toString('hex')}`);
  }
  const bundle = await rawTls('GET /v1/bundle HTTP/1.1\r\nHost: identity\r\nConnection: close\r\n\r\n');
  assert.match(bundle, /^HTTP\/1\.1 200 OK\r\n[\s\S]*-----BEGIN CERTIFICATE-----/);
  // Oversized headers over TLS still get their 431 (an attempt that peeked at every
  // connection's first bytes lost it).
  const huge = await rawTls(
    `POST /v1/certify HTTP/1.1\r\nHost: identity\r\ncontent-type: application/json\r\nX-Huge: ${'a'.repeat(20_000)}\r\n\r\n`,
  );
  assert.match(huge, /^HTTP\/1\.1 431 /);
  assert.match(huge, /MUTUAL_IDENTITY_REQUEST_TOO_LARGE/);
});
