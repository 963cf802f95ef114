// Clients that misbehave at the edge of the identity service (real process, 1-second client
// timeout): one trickling its headers byte by byte and one trickling its body are cut off (408
// or a closed socket) while other clients are served; requests refused before the certifier
// (wrong content type, bad JSON, too large, too slow) are written to the audit log too.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from 'node:tls';
import { createCsr } from '../../src/pki/index.ts';
import { createCa, type IdentityServiceProcess, mintJoinToken, startIdentityService } from './run-mutual.ts';

const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
let dir: string;
let service: IdentityServiceProcess;
let bundlePem: string;
let token: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-hostile-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), ['--client-timeout', '1s']);
  token = await mintJoinToken(join(dir, 'state'), 'demo', 'web');
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

function call(
  path: string,
  body: string | Buffer,
  contentType = 'application/json',
): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path,
        method: body === '' ? 'GET' : 'POST',
        ca: bundlePem,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': contentType },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () => {
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: response.statusCode!, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body === '' ? undefined : body);
  });
}

async function validCertify() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return call('/v1/certify', JSON.stringify({ token, csr: await createCsr({ privateKey, spiffeId: WEB }) }));
}

/**
 * Opens a TLS connection, sends `head` at once, then `trickle` one byte every 150 ms until the
 * server answers or closes. Resolves with what the server sent.
 */
function trickler(head: string, trickle: string): Promise<{ received: string; bytesTrickled: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: service.apiUrl.hostname,
      port: Number(service.apiUrl.port),
      ca: bundlePem,
      checkServerIdentity: () => undefined,
    });
    let received = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('secureConnect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent >= trickle.length) {
          clearInterval(timer);
          reject(new Error('the server let a trickling client send everything'));
          return;
        }
        socket.write(trickle[sent++]!);
      }, 150);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ received, bytesTrickled: sent });
    });
    socket.on('error', () => {});
  });
}

test('a client trickling its headers is cut off while others are served', async () => {
  const slow = trickler(
    'POST /v1/certify HTTP/1.1\r\nHost: identity\r\n',
    `X-Padding: ${'a'.repeat(400)}\r\n\r\n`,
  );
  // Meanwhile, normal clients get certificates and the bundle.
  for (let i = 0; i < 3; i++) assert.equal((await validCertify()).status, 200);
  assert.equal((await call('/v1/bundle', '')).status, 200);
  const { received } = await slow;
  // Node answers 408 and closes, or closes outright: either way the socket is not held.
  assert.ok(received === '' || /^HTTP\/1\.1 408/.test(received), received);
});

test('a client trickling its body gets 408 MUTUAL_IDENTITY_REQUEST_TIMEOUT while others are served', async () => {
  const body = JSON.stringify({ token, csr: 'x'.repeat(300) });
  const slow = trickler(
    `POST /v1/certify HTTP/1.1\r\nHost: identity\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
    body,
  );
  assert.equal((await validCertify()).status, 200);
  const { received } = await slow;
  assert.match(received, /^HTTP\/1\.1 408/);
  assert.match(received, /MUTUAL_IDENTITY_REQUEST_TIMEOUT/);
});

test('requests refused before the certifier are audited with their reason', async () => {
  const cases: Array<[string | Buffer, string, number, string]> = [
    ['{"token": 1', 'application/json', 400, 'MUTUAL_IDENTITY_REQUEST_INVALID'],
    [JSON.stringify({ token, csr: 'x' }), 'text/plain', 415, 'MUTUAL_IDENTITY_REQUEST_INVALID'],
    [Buffer.alloc(100 * 1024, 'a'), 'application/json', 413, 'MUTUAL_IDENTITY_REQUEST_TOO_LARGE'],
  ];
  for (const [body, contentType, status, code] of cases) {
    const response = await call('/v1/certify', body, contentType);
    assert.equal(response.status, status, contentType);
    assert.equal(response.json.error.code, code);
  }
  const audit = (await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  const refusals = audit.filter((entry) => entry.result === 'refused');
  for (const [reason, message] of [
    ['MUTUAL_IDENTITY_REQUEST_INVALID', /not valid JSON/],
    ['MUTUAL_IDENTITY_REQUEST_INVALID', /content-type application\/json, not "text\/plain"/],
    ['MUTUAL_IDENTITY_REQUEST_TOO_LARGE', /larger than 65536 bytes/],
    ['MUTUAL_IDENTITY_REQUEST_TIMEOUT', /body did not arrive within 1000 ms/],
    ['MUTUAL_IDENTITY_REQUEST_TIMEOUT', /headers did not arrive within 1000 ms/],
  ] as const) {
    const entry = refusals.find(
      (candidate) => candidate.reason === reason && message.test(candidate.message),
    );
    assert.ok(entry, `no audit line for ${reason} ${message}: ${JSON.stringify(refusals)}`);
    assert.match(entry.time, /^\d{4}-\d\d-\d\dT/);
    assert.match(entry.requester, /^127\.0\.0\.1:\d+$/);
  }
  assert.equal((await validCertify()).status, 200);
});

/** Sends `bytes` over TLS at once; resolves with what came back before the server closed. */
function rawTls(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({
      host: service.apiUrl.hostname,
      port: Number(service.apiUrl.port),
      ca: bundlePem,
      checkServerIdentity: () => undefined,
    });
    let received = '';
    socket.on('secureConnect', () => socket.end(bytes));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    // A refused oversized request may end in a reset after the answer: what came is kept.
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

test('huge or repeated headers, targets that are not URLs and malformed framing get coded answers', async () => {
  const post = 'POST /v1/certify HTTP/1.1\r\nHost: identity\r\ncontent-type: application/json\r\n';
  const cases: Array<[string, string, string, RegExp]> = [
    [
      `${post}X-Huge: ${'a'.repeat(20_000)}\r\n\r\n`,
      '431',
      'MUTUAL_IDENTITY_REQUEST_TOO_LARGE',
      /headers are larger than 16384 bytes/,
    ],
    [
      `${post}${'X-Again: aaaaaaaaaa\r\n'.repeat(1500)}\r\n`,
      '431',
      'MUTUAL_IDENTITY_REQUEST_TOO_LARGE',
      /headers are larger than 16384 bytes/,
    ],
    [
      'GET //[ HTTP/1.1\r\nHost: identity\r\nConnection: close\r\n\r\n',
      '400',
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      /request target "\/\/\[" is not a path: use POST \/v1\/certify or GET \/v1\/bundle/,
    ],
    [
      `${post}transfer-encoding: chunked\r\nConnection: close\r\n\r\n${`4000\r\n${'a'.repeat(0x4000)}\r\n`.repeat(5)}0\r\n\r\n`,
      '413',
      'MUTUAL_IDENTITY_REQUEST_TOO_LARGE',
      /body is larger than 65536 bytes/,
    ],
    [
      `${post}content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`,
      '400',
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      /not valid HTTP \(HPE_/,
    ],
    [
      `${post}content-length: 4\r\nConnection: close\r\n\r\nnull`,
      '400',
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      /must be a JSON object with string fields "token" and "csr"/,
    ],
  ];
  for (const [request, status, code, message] of cases) {
    const answer = await rawTls(request);
    const what = request.slice(0, 60);
    assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), what);
    const body = JSON.parse(answer.slice(answer.indexOf('{'), answer.lastIndexOf('}') + 1));
    assert.equal(body.error.code, code, what);
    assert.match(body.error.message, message, what);
    assert.equal(typeof body.error.hint, 'string', what);
    assert.equal((await call('/v1/bundle', '')).status, 200, `still serving after ${what}`);
  }
  const audit = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  assert.match(
    audit,
    /"reason":"MUTUAL_IDENTITY_REQUEST_TOO_LARGE","message":"the request headers are larger/,
  );
  assert.equal((await validCertify()).status, 200);
});
