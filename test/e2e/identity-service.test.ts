// The identity service as a real process: a workload with a valid token gets a certificate for
// exactly its identity; wrong, expired and forged tokens, foreign CSRs and hostile bodies are
// refused with a code; every outcome lands in the audit log.
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SignJWT } from 'jose';
import { createCsr, createPeerVerifier, parseBundlePem, parseCertificatesPem } from '../../src/pki/index.ts';
import { createCa, type IdentityServiceProcess, runMutual, startIdentityService } from './run-mutual.ts';

let dir: string;
let service: IdentityServiceProcess;
let apiUrl: URL;
let adminUrl: URL;
let bundlePem: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-identity-'));
  await createCa(join(dir, 'ca'));
  bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  service = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), ['--lifetime', '1h']);
  apiUrl = service.apiUrl;
  adminUrl = service.adminUrl;
});

after(async () => {
  await service.stop();
  await rm(dir, { recursive: true, force: true });
});

async function token(ns: string, sa: string, ttl = '10m'): Promise<string> {
  const minted = await runMutual([
    'identity',
    'token',
    'create',
    '--ns',
    ns,
    '--sa',
    sa,
    '--ttl',
    ttl,
    '--state-dir',
    join(dir, 'state'),
  ]);
  assert.equal(minted.code, 0, minted.stderr);
  return minted.stdout.trim();
}

/** POSTs to the real API, verifying the server against the bundle and its SPIFFE ID. */
function call(
  path: string,
  body: string | Buffer,
  method = 'POST',
): Promise<{ status: number; json: any; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: apiUrl.hostname,
        port: apiUrl.port,
        path,
        method,
        ca: bundlePem,
        checkServerIdentity: (_host, cert) =>
          cert.subjectaltname?.includes('URI:spiffe://cluster.local/ns/mutual-system/sa/identity')
            ? undefined
            : new Error(`unexpected server identity ${cert.subjectaltname}`),
        headers: { 'content-type': 'application/json' },
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
          resolve({ status: response.statusCode!, json, headers: response.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function csrFor(spiffeId: string) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return createCsr({ privateKey, spiffeId });
}

test('a workload with a valid token gets a certificate for exactly its identity', async () => {
  const web = 'spiffe://cluster.local/ns/demo/sa/web';
  const response = await call(
    '/v1/certify',
    JSON.stringify({ token: await token('demo', 'web'), csr: await csrFor(web) }),
  );
  assert.equal(response.status, 200, JSON.stringify(response.json));
  assert.equal(response.json.spiffeId, web);
  const chain = parseCertificatesPem(response.json.certificateChain, 'response').map((c) => c.der);
  const verifier = createPeerVerifier({ anchors: parseBundlePem(response.json.trustBundle).rootsDer });
  const verdict = verifier.verifySvid(chain, { expectedId: web });
  assert.ok(verdict.ok, JSON.stringify(verdict));
  const lifetimeMs = Date.parse(response.json.expiresAt) - Date.now();
  assert.ok(lifetimeMs > 55 * 60_000 && lifetimeMs <= 61 * 60_000, `lifetime ${lifetimeMs}`);
});

test('a token for sa/web cannot get sa/db, and the refusal is audited', async () => {
  const response = await call(
    '/v1/certify',
    JSON.stringify({
      token: await token('demo', 'web'),
      csr: await csrFor('spiffe://cluster.local/ns/demo/sa/db'),
    }),
  );
  assert.equal(response.status, 400);
  assert.equal(response.json.error.code, 'MUTUAL_PKI_CSR_SAN_INVALID');
  const audit = (await readFile(join(dir, 'state', 'identity', 'audit.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  assert.ok(
    audit.some(
      (entry) =>
        entry.result === 'refused' &&
        entry.reason === 'MUTUAL_PKI_CSR_SAN_INVALID' &&
        entry.identity.endsWith('/sa/web'),
    ),
  );
  assert.ok(audit.some((entry) => entry.result === 'issued' && /^[0-9a-f]{32}$/.test(entry.serialNumber)));
});

test('expired, forged and malformed tokens get 401 with the reason', async () => {
  const csr = await csrFor('spiffe://cluster.local/ns/demo/sa/web');
  const { privateKey: forger } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const forged = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer('mutual-identity')
    .setAudience('identity.mutual.dev')
    .setSubject('system:serviceaccount:demo:web')
    .setJti('x')
    .setExpirationTime('10m')
    .sign(forger);
  // Expired well beyond the 30 s skew the service tolerates, signed with the service's real key.
  const realKey = createPrivateKey(await readFile(join(dir, 'state', 'identity', 'join-token.key'), 'utf8'));
  const nowS = Math.floor(Date.now() / 1000);
  const expired = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer('mutual-identity')
    .setAudience('identity.mutual.dev')
    .setSubject('system:serviceaccount:demo:web')
    .setJti('y')
    .setIssuedAt(nowS - 600)
    .setExpirationTime(nowS - 120)
    .sign(realKey);
  const otherAudience = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer('mutual-identity')
    .setAudience('kubernetes.default.svc')
    .setSubject('system:serviceaccount:demo:web')
    .setJti('z')
    .setExpirationTime('10m')
    .sign(realKey);
  const validToken = await token('demo', 'web');
  const [header, payload] = validToken.split('.');
  const unsigned = `${header}.${payload}.`;
  const cases: Array<[string, RegExp]> = [
    [forged, /signature/],
    [expired, /expired/],
    [otherAudience, /audience/],
    ['not-a-jwt', /well-formed/],
    [unsigned, /well-formed|signature/],
  ];
  for (const [candidate, message] of cases) {
    const response = await call('/v1/certify', JSON.stringify({ token: candidate, csr }));
    assert.equal(response.status, 401, candidate.slice(0, 20));
    assert.equal(response.json.error.code, 'MUTUAL_IDENTITY_TOKEN_INVALID');
    assert.match(response.json.error.message, message);
  }
});

test('hostile bodies get clear 4xx errors and the service keeps serving', async () => {
  const tokenText = await token('demo', 'web');
  const cases: Array<[string | Buffer, number, string]> = [
    ['{not json', 400, 'MUTUAL_IDENTITY_REQUEST_INVALID'],
    ['[]', 400, 'MUTUAL_IDENTITY_REQUEST_INVALID'],
    [JSON.stringify({ token: tokenText, csr: 'garbage' }), 400, 'MUTUAL_PKI_PEM_MALFORMED'],
    [
      JSON.stringify({
        token: tokenText,
        csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      }),
      400,
      'MUTUAL_PKI_CSR_MALFORMED',
    ],
    [Buffer.alloc(200 * 1024, 'a'), 413, 'MUTUAL_IDENTITY_REQUEST_TOO_LARGE'],
  ];
  for (const [body, status, code] of cases) {
    const response = await call('/v1/certify', body);
    assert.equal(response.status, status, String(body).slice(0, 40));
    assert.equal(response.json.error.code, code);
  }
  const wrongMethod = await call('/v1/certify', '', 'GET');
  assert.equal(wrongMethod.status, 405);
  const ready = await fetch(new URL('/ready', adminUrl));
  assert.equal(ready.status, 200);
});

test('the bundle is served as PEM and SPIFFE JWKS with an ETag', async () => {
  const pem = await call('/v1/bundle', '', 'GET');
  assert.equal(pem.status, 200);
  assert.equal(pem.json, bundlePem);
  const etag = pem.headers.etag as string;
  assert.match(etag, /^"\d+-[0-9a-f]{16}"$/);
  const jwks = await call('/v1/bundle?format=jwks', '', 'GET');
  assert.equal(jwks.json.keys[0].use, 'x509-svid');
  const metrics = await (await fetch(new URL('/metrics', adminUrl))).text();
  assert.match(metrics, /mutual_identity_certificates_issued_total [1-9]/);
  assert.match(
    metrics,
    /mutual_identity_certificates_refused_total\{reason="MUTUAL_IDENTITY_TOKEN_INVALID"\} [1-9]/,
  );
  assert.match(metrics, /mutual_identity_issuer_expiry_timestamp_seconds \d{10}/);
});
