// What a confused or hostile client of the identity service sees (real process): a keep-alive
// client long-polling the bundle many times over one socket leaves nothing behind on it; a bad
// ?wait= is a coded 400 rather than an immediate 304 (a polling loop would spin); plain HTTP to the
// HTTPS port and a TLS 1.2 client are audited as such (not as bad HTTP); a token with a stray space or a "Bearer " prefix
// is called malformed, not forged; and every refusal's audit line says what was wrong, never the token.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { createCsr } from '../../src/pki/index.ts';
import { createCa, type IdentityServiceProcess, mintJoinToken, startIdentityService } from './run-mutual.ts';

const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
let dir: string;
let service: IdentityServiceProcess;
let bundlePem: string;
let token: string;
let stderr = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-identity-edge-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
  service.child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  token = await mintJoinToken(join(dir, 'state'), 'demo', 'web');
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
  /** The client's port: the same for calls over one kept-alive socket. */
  localPort: number;
}

function call(
  path: string,
  options: { body?: string; headers?: Record<string, string>; agent?: Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: service.apiUrl.hostname,
        port: service.apiUrl.port,
        path,
        method: options.body === undefined ? 'GET' : 'POST',
        ca: bundlePem,
        // The service's SVID names localhost; a checkServerIdentity option would stop the agent reusing sockets.
        servername: 'localhost',
        headers: { 'content-type': 'application/json', ...options.headers },
        ...(options.agent ? { agent: options.agent } : { agent: false }),
      },
      (response) => {
        const localPort = response.socket.localPort!;
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () => {
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: response.statusCode!, headers: response.headers, json, localPort });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

async function certify(withToken: string, spiffeId = WEB): Promise<Answer> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await createCsr({ privateKey, spiffeId });
  return call('/v1/certify', { body: JSON.stringify({ token: withToken, csr }) });
}

async function auditLines(): Promise<any[]> {
  const text = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

test('long polls over one keep-alive socket leave no listener behind on it', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await call('/v1/bundle', { agent });
    const etag = String(first.headers.etag);
    for (let i = 0; i < 15; i++) {
      const polled = await call('/v1/bundle?wait=0.05', { agent, headers: { 'if-none-match': etag } });
      assert.equal(polled.status, 304);
      assert.equal(polled.localPort, first.localPort, 'every poll goes over the first socket');
    }
  } finally {
    agent.destroy();
  }
  // Before, each poll left a 'close' listener on the socket: Node warned at the eleventh.
  assert.doesNotMatch(stderr, /MaxListenersExceeded/);
});

test('If-None-Match is matched as RFC 9110 asks: weak tags, lists and * get 304, another tag 200', async () => {
  const etag = String((await call('/v1/bundle')).headers.etag);
  for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const answer = await call('/v1/bundle', { headers: { 'if-none-match': header } });
    // Only the exact tag got its 304 before; curl and caches send the others.
    assert.equal(answer.status, 304, header);
    assert.equal(answer.headers.etag, etag, header);
  }
  assert.equal((await call('/v1/bundle', { headers: { 'if-none-match': '"other"' } })).status, 200);
  // A weak tag in a long poll is held like the exact one.
  const started = performance.now();
  assert.equal((await call('/v1/bundle?wait=1s', { headers: { 'if-none-match': `W/${etag}` } })).status, 304);
  assert.ok(performance.now() - started >= 900, `answered after ${performance.now() - started} ms`);
});

test('wait is seconds or a duration; anything else is a coded 400, not an immediate 304', async () => {
  const etag = String((await call('/v1/bundle')).headers.etag);
  const started = performance.now();
  const held = await call('/v1/bundle?wait=1s', { headers: { 'if-none-match': etag } });
  assert.equal(held.status, 304);
  // wait=1s was read as 0 before, and answered at once.
  assert.ok(performance.now() - started >= 900, `answered after ${performance.now() - started} ms`);
  for (const wait of ['-5', 'abc', 'Infinity', '1e9']) {
    const refused = await call(`/v1/bundle?wait=${wait}`, { headers: { 'if-none-match': etag } });
    assert.equal(refused.status, 400, wait);
    assert.equal(refused.json.error.code, 'MUTUAL_IDENTITY_REQUEST_INVALID');
    assert.match(refused.json.error.message, /is not a duration: .*wait=30s \(at most 60s\)/);
    assert.match(refused.json.error.hint, /GET \/v1\/bundle/);
  }
});

test('plain HTTP and TLS 1.2 refused at the handshake are audited with what was wrong', async () => {
  await new Promise<void>((resolve) => {
    const socket = connectTcp(Number(service.apiUrl.port), service.apiUrl.hostname);
    socket.on('connect', () => socket.write('GET /v1/bundle HTTP/1.1\r\nHost: identity\r\n\r\n'));
    socket.on('data', () => {});
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
  await new Promise<void>((resolve) => {
    const socket = connectTls({
      host: service.apiUrl.hostname,
      port: Number(service.apiUrl.port),
      ca: bundlePem,
      checkServerIdentity: () => undefined,
      maxVersion: 'TLSv1.2',
    });
    socket.on('error', () => resolve());
    socket.on('secureConnect', () => {
      socket.destroy();
      resolve();
    });
  });
  assert.equal((await call('/v1/bundle')).status, 200, 'TLS 1.3 clients are served as before');
  // Before, both read "the request is not valid HTTP (ERR_SSL_...)".
  await waitFor(async () => {
    const messages = (await auditLines()).map((entry) => String(entry.message));
    return (
      messages.some((message) =>
        /^plain HTTP was sent .* speaks only HTTPS .*use https:\/\//.test(message),
      ) &&
      messages.some((message) => /^the TLS handshake failed \(ERR_SSL_.+\): .*only TLS 1\.3/.test(message))
    );
  });
});

test('a token with whitespace around it works; inside or with "Bearer " it is malformed, not forged', async () => {
  assert.equal((await certify(`${token}\n`)).status, 200, 'a token file read with its newline');
  const bearer = await certify(`Bearer ${token}`);
  assert.equal(bearer.status, 401);
  assert.match(bearer.json.error.message, /starts with "Bearer ": send the token alone/);
  const [header, payload, signature] = token.split('.');
  const spaced = await certify(`${header}.${payload}. ${signature}`);
  assert.equal(spaced.status, 401);
  // Before: "the token signature does not verify: it was not minted by this identity service".
  assert.match(spaced.json.error.message, /not a well-formed JWT \(three base64url parts/);
});

test('each refusal is audited with what was wrong, each issuance with a token handle, never the token', async () => {
  const otherToken = await mintJoinToken(join(dir, 'other-state'), 'demo', 'web');
  const [header, , signature] = token.split('.');
  const claims = {
    iss: 'mutual-identity',
    aud: 'identity.mutual.dev',
    sub: 'system:serviceaccount:demo:admin',
  };
  const altered = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${token.split('.')[1]}.`;
  const cases: Array<[string, string, number, string, RegExp]> = [
    [otherToken, WEB, 401, 'MUTUAL_IDENTITY_TOKEN_INVALID', /signature does not verify/],
    [altered, WEB, 401, 'MUTUAL_IDENTITY_TOKEN_INVALID', /signature does not verify/],
    [none, WEB, 401, 'MUTUAL_IDENTITY_TOKEN_INVALID', /not signed with ES256/],
    [
      token,
      'spiffe://cluster.local/ns/kube-system/sa/admin',
      400,
      'MUTUAL_PKI_CSR_SAN_INVALID',
      /kube-system\/sa\/admin/,
    ],
  ];
  for (const [withToken, spiffeId, status, code, message] of cases) {
    const answer = await certify(withToken, spiffeId);
    assert.equal(answer.status, status, String(message));
    assert.equal(answer.json.error.code, code);
    assert.match(answer.json.error.message, message);
  }
  assert.equal((await certify(token)).status, 200);
  const lines = await auditLines();
  for (const [, , , code, message] of cases) {
    // Before, a certifier refusal had only its code: a forged token read as an expired one.
    assert.ok(
      lines.some(
        (entry) => entry.result === 'refused' && entry.reason === code && message.test(entry.message),
      ),
      `no audit line for ${code} ${message}`,
    );
  }
  const issued = lines.filter((entry) => entry.result === 'issued');
  assert.ok(issued.length > 0 && issued.every((entry) => /^[0-9a-f]{16}$/.test(entry.tokenId)));
  const text = await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8');
  for (const secret of [token, otherToken, token.split('.')[2]!, otherToken.split('.')[2]!]) {
    assert.ok(!text.includes(secret), 'a token (or its signature) is in the audit log');
  }
});

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail('condition not met within 5 s');
}
