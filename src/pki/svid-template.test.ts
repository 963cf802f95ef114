import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { fixedClock } from '../clock.ts';
import { type CertificateAuthority, createIssuer, createTrustAnchor } from './authority.ts';
import {
  buildSvidCertificate,
  type IssuedSvid,
  type IssueSvidOptions,
  issueSvid,
  planSvid,
} from './issue.ts';
import { decodePem } from './pem.ts';
import { createSvidSigner } from './svid-template.ts';
import { toCryptoKey, x509 } from './x509-library.ts';

const run = promisify(execFile);
const TD = 'cluster.local';
const START_MS = Date.UTC(2026, 4, 17, 9, 30, 12, 345);

async function pki(keyAlgorithm?: 'ecdsa-p384') {
  const clock = fixedClock(START_MS - 3600_000);
  const anchor = await createTrustAnchor({ trustDomain: TD, clock, keyAlgorithm });
  const issuer = await createIssuer(anchor, { trustDomain: TD, clock, keyAlgorithm });
  return { anchor, issuer };
}

/** A small deterministic PRNG, so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ecKey(curve: 'P-256' | 'P-384' = 'P-256'): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: curve }).publicKey;
}

function der(svid: IssuedSvid): Buffer {
  return decodePem(svid.certificatePem)[0]!.der;
}

/** The TBSCertificate TLV: the first element of the Certificate SEQUENCE (lengths below 64 KiB). */
function tbsOf(certificateDer: ArrayBuffer): Buffer {
  const der = Buffer.from(certificateDer);
  const contentAt = (at: number) => at + 2 + (der[at + 1]! & 0x80 ? der[at + 1]! & 0x7f : 0);
  const tbsAt = contentAt(0);
  const tbsLength = der[tbsAt + 1] === 0x82 ? der.readUInt16BE(tbsAt + 2) : der[tbsAt + 2]!;
  return der.subarray(tbsAt, contentAt(tbsAt) + tbsLength);
}

/**
 * The fast certificate must be exactly what the library builds for the same plan, serial and key:
 * the library's TBSCertificate bytes are the reference, and the signature must verify.
 */
async function assertSameAsLibrary(
  issuer: CertificateAuthority,
  options: IssueSvidOptions,
  svid: IssuedSvid,
) {
  const certificate = new x509.X509Certificate(der(svid));
  const reference = await buildSvidCertificate(
    issuer,
    planSvid(issuer, options),
    svid.serialNumber,
    options.publicKey,
  );
  assert.deepEqual(
    tbsOf(certificate.rawData),
    tbsOf(reference.rawData),
    'TBSCertificate differs from the library',
  );
  assert.deepEqual(certificate.signatureAlgorithm, reference.signatureAlgorithm);
  assert.equal(
    await certificate.verify({ publicKey: issuer.certificate.publicKey, signatureOnly: true }),
    true,
    'x509 verify',
  );
  const node = new NodeX509Certificate(der(svid));
  assert.equal(node.verify(issuer.keys.publicKey), true, 'node verify');
  assert.equal(node.serialNumber.toLowerCase(), svid.serialNumber);
  assert.equal(new Date(node.validFrom).getTime(), svid.notBeforeMs);
  assert.equal(new Date(node.validTo).getTime(), svid.notAfterMs);
  const names = [
    `URI:${options.spiffeId}`,
    ...(options.dnsNames ?? []).map((name) => `DNS:${name.toLowerCase()}`),
  ];
  assert.equal(node.subjectAltName, names.join(', '));
  const ski = await x509.SubjectKeyIdentifierExtension.create(toCryptoKey(options.publicKey));
  assert.equal(certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, ski.keyId);
  assert.ok(node.publicKey.equals(options.publicKey), 'public key');
}

test('fast-path certificates equal the library’s, for many random requests', async () => {
  const { issuer } = await pki();
  const signer = createSvidSigner(issuer);
  const rand = random(0x5eed);
  const ids = ['/ns/a/sa/web', '/ns/b/sa/db', '/ns/c/sa/api-gateway-with-a-much-longer-name/x'];
  const dnsChoices = [[], ['web.example'], ['API.Example.com', '*.svc.cluster.local']];
  const clock = fixedClock(START_MS);
  for (let i = 0; i < 60; i++) {
    clock.advance(Math.floor(rand() * 3 * 86_400_000));
    const options: IssueSvidOptions = {
      spiffeId: `spiffe://${TD}${ids[Math.floor(rand() * ids.length)]}`,
      dnsNames: dnsChoices[Math.floor(rand() * dnsChoices.length)]!,
      publicKey: ecKey(rand() < 0.2 ? 'P-384' : 'P-256'),
      clock,
      lifetimeMs: 1 + Math.floor(rand() * 7 * 86_400_000),
      skewMs: Math.floor(rand() * 60_000),
    };
    const svid = await signer.issue(options);
    await assertSameAsLibrary(issuer, options, svid);
    const slow = await issueSvid(issuer, options);
    assert.deepEqual(
      { ...svid, serialNumber: '', certificatePem: '', chainPem: svid.chainPem.length > 0 },
      {
        ...slow,
        serialNumber: '',
        certificatePem: '',
        chainPem: slow.chainPem.length > 0,
      },
    );
  }
  // 3 IDs × 3 DNS sets × 2 curves at most were built by the library; the rest came from templates.
  assert.ok(signer.counts.byLibrary <= 18, JSON.stringify(signer.counts));
  assert.ok(signer.counts.fromTemplate >= 42, JSON.stringify(signer.counts));
});

test('a P-384 issuer signs from templates with SHA-384', async () => {
  const { issuer } = await pki('ecdsa-p384');
  const signer = createSvidSigner(issuer);
  const clock = fixedClock(START_MS);
  for (let i = 0; i < 3; i++) {
    const options = { spiffeId: `spiffe://${TD}/ns/x/sa/y`, publicKey: ecKey(), clock };
    await assertSameAsLibrary(issuer, options, await signer.issue(options));
  }
  assert.deepEqual(signer.counts, { fromTemplate: 2, byLibrary: 1 });
});

test('a key imported from a compressed point gets the uncompressed point, as from the library', async () => {
  const { issuer } = await pki();
  const signer = createSvidSigner(issuer);
  const clock = fixedClock(START_MS);
  const spiffeId = `spiffe://${TD}/ns/a/sa/web`;
  await signer.issue({ spiffeId, publicKey: ecKey(), clock });
  const key = ecKey();
  const spki = key.export({ type: 'spki', format: 'der' });
  const jwk = key.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  const compressed = createPublicKey({
    key: Buffer.concat([
      Buffer.of(0x30, 0x39),
      spki.subarray(2, 23), // AlgorithmIdentifier: id-ecPublicKey, prime256v1
      Buffer.of(0x03, 0x22, 0x00),
      Buffer.of(0x02 | (y.at(-1)! & 1)), // compressed: the parity of y, then x
      x,
    ]),
    format: 'der',
    type: 'spki',
  });
  const options = { spiffeId, publicKey: compressed, clock };
  await assertSameAsLibrary(issuer, options, await signer.issue(options));
  assert.equal(signer.counts.fromTemplate, 1);
});

test('openssl accepts a fast-path certificate as a strict client and server certificate', async () => {
  const { anchor, issuer } = await pki();
  const signer = createSvidSigner(issuer);
  const clock = fixedClock(START_MS);
  await signer.issue({ spiffeId: `spiffe://${TD}/ns/a/sa/web`, publicKey: ecKey(), clock });
  const svid = await signer.issue({ spiffeId: `spiffe://${TD}/ns/a/sa/web`, publicKey: ecKey(), clock });
  assert.equal(signer.counts.fromTemplate, 1);
  const dir = await mkdtemp(join(tmpdir(), 'mutual-svid-'));
  try {
    await writeFile(join(dir, 'root.pem'), anchor.certificatePem);
    await writeFile(join(dir, 'issuer.pem'), issuer.certificatePem);
    await writeFile(join(dir, 'leaf.pem'), svid.certificatePem);
    const attime = String(Math.floor(START_MS / 1000));
    for (const purpose of ['sslclient', 'sslserver']) {
      const { stdout } = await run('openssl', [
        'verify',
        '-x509_strict',
        '-purpose',
        purpose,
        '-attime',
        attime,
        '-CAfile',
        join(dir, 'root.pem'),
        '-untrusted',
        join(dir, 'issuer.pem'),
        join(dir, 'leaf.pem'),
      ]);
      assert.match(stdout, /: OK/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the template cache is an LRU bounded by cacheSize', async () => {
  const { issuer } = await pki();
  const signer = createSvidSigner(issuer, { cacheSize: 2 });
  const clock = fixedClock(START_MS);
  const issue = (name: string) =>
    signer.issue({ spiffeId: `spiffe://${TD}/${name}`, publicKey: ecKey(), clock });
  await issue('a'); // built: [a]
  await issue('b'); // built: [a, b]
  await issue('a'); // template: [b, a]
  await issue('c'); // built, evicts b: [a, c]
  assert.equal(signer.templateCount, 2);
  assert.deepEqual(signer.counts, { fromTemplate: 1, byLibrary: 3 });
  await issue('a'); // template
  await issue('b'); // built again, evicts c
  await issue('c'); // built again
  assert.deepEqual(signer.counts, { fromTemplate: 2, byLibrary: 5 });
  assert.equal(signer.templateCount, 2);

  const uncached = createSvidSigner(issuer, { cacheSize: 0 });
  for (let i = 0; i < 2; i++)
    await uncached.issue({ spiffeId: `spiffe://${TD}/a`, publicKey: ecKey(), clock });
  assert.deepEqual(uncached.counts, { fromTemplate: 0, byLibrary: 2 });
  assert.throws(() => createSvidSigner(issuer, { cacheSize: -1 }), RangeError);
});

test('requests a template cannot serve are built by the library', async () => {
  const { issuer } = await pki();
  const signer = createSvidSigner(issuer);
  const spiffeId = `spiffe://${TD}/ns/a/sa/web`;
  // RSA keys: keyUsage differs and the key is not an EC point.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  const clock = fixedClock(START_MS);
  for (let i = 0; i < 2; i++)
    await assertSameAsLibrary(
      issuer,
      { spiffeId, publicKey: rsa, clock },
      await signer.issue({ spiffeId, publicKey: rsa, clock }),
    );
  assert.deepEqual(signer.counts, { fromTemplate: 0, byLibrary: 2 });
  // Years from 2050 are GeneralizedTime, another length: no template.
  const clock2050 = fixedClock(Date.UTC(2050, 0, 2));
  const anchor = await createTrustAnchor({ trustDomain: TD, clock: clock2050 });
  const late = await createIssuer(anchor, { trustDomain: TD, clock: clock2050 });
  const lateSigner = createSvidSigner(late);
  for (let i = 0; i < 2; i++) {
    const options = { spiffeId, publicKey: ecKey(), clock: clock2050 };
    await assertSameAsLibrary(late, options, await lateSigner.issue(options));
  }
  assert.deepEqual(lateSigner.counts, { fromTemplate: 0, byLibrary: 2 });
});

test('the signer makes the same checks as issueSvid', async () => {
  const { issuer } = await pki();
  const signer = createSvidSigner(issuer);
  const clock = fixedClock(START_MS);
  const good = { spiffeId: `spiffe://${TD}/ns/a/sa/web`, publicKey: ecKey(), clock };
  await signer.issue(good); // so that the template exists and cannot skip a check
  const bad: Array<[string, Partial<IssueSvidOptions>]> = [
    ['MUTUAL_PKI_TRUST_DOMAIN_REJECTED', { spiffeId: 'spiffe://other.example/ns/a/sa/web' }],
    ['MUTUAL_SPIFFE_ID_INVALID', { spiffeId: `spiffe://${TD}` }],
    ['MUTUAL_PKI_LIFETIME_INVALID', { lifetimeMs: 0 }],
    ['MUTUAL_PKI_LIFETIME_INVALID', { skewMs: -1 }],
    ['MUTUAL_PKI_DNS_NAME_INVALID', { dnsNames: ['not a name'] }],
    ['MUTUAL_PKI_KEY_UNSUPPORTED', { publicKey: generateKeyPairSync('ed25519').publicKey }],
    ['MUTUAL_PKI_ISSUER_INVALID', { clock: fixedClock(issuer.notAfterMs + 1) }],
  ];
  for (const [code, change] of bad) {
    const options = { ...good, ...change };
    await assert.rejects(signer.issue(options), { code }, code);
    await assert.rejects(issueSvid(issuer, options), { code }, code);
  }
});
