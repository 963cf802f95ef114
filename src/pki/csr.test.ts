import assert from 'node:assert/strict';
import { generateKeyPairSync, KeyObject, randomBytes, sign, webcrypto } from 'node:crypto';
import { test } from 'node:test';
import { Attributes, CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Attribute, Extension, Extensions } from '@peculiar/asn1-x509';
import { type ErrorCode, isMutualError } from '../errors.ts';
import { rejectsCode } from '../testing/expect-error.ts';
import { admitCsr, createCsr } from './csr.ts';
import { generateKeyPair, isSameKey } from './keys.ts';
import { decodePem, encodePem } from './pem.ts';
import { x509 } from './x509-library.ts';

const ID = 'spiffe://cluster.local/ns/shop/sa/web';
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

interface CryptoPair {
  privateKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
}

const ecPair = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoPair;

function cryptoPair(
  pair: { privateKey: KeyObject; publicKey: KeyObject },
  algorithm: typeof EC_P256 | typeof RSA,
): CryptoPair {
  return {
    privateKey: pair.privateKey.toCryptoKey(algorithm, true, ['sign']),
    publicKey: pair.publicKey.toCryptoKey(algorithm, true, ['verify']),
  };
}

/** A CSR built directly with the library, bypassing createCsr's rules. */
async function hostileCsr(
  names: x509.JsonGeneralName[] | undefined,
  options: {
    keys?: CryptoPair;
    signingAlgorithm?: typeof EC_P256 | typeof RSA;
    extraExtensions?: x509.Extension[];
  } = {},
): Promise<Uint8Array> {
  const extensions: x509.Extension[] = names ? [new x509.SubjectAlternativeNameExtension(names, true)] : [];
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: options.keys ?? ecPair,
    signingAlgorithm: options.signingAlgorithm ?? EC_P256,
    extensions: [...extensions, ...(options.extraExtensions ?? [])],
  });
  return new Uint8Array(request.rawData);
}

test('createCsr → admitCsr admits the expected ID with the workload key, PEM or DER', async () => {
  for (const algorithm of ['ecdsa-p256', 'ecdsa-p384'] as const) {
    const keys = await generateKeyPair(algorithm);
    const pem = await createCsr({ privateKey: keys.privateKey, spiffeId: ID });
    assert.match(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
    assert.ok(pem.endsWith('-----END CERTIFICATE REQUEST-----\n'));
    assert.doesNotMatch(pem, /PRIVATE KEY/);

    const fromPem = await admitCsr(pem, ID);
    assert.equal(fromPem.spiffeId.uri, ID, algorithm);
    assert.equal(fromPem.spiffeId.trustDomain, 'cluster.local');
    assert.ok(isSameKey(fromPem.publicKey, keys.publicKey), algorithm);
    assert.equal(fromPem.publicKey.type, 'public');

    const der = decodePem(pem)[0]!.der;
    const fromDer = await admitCsr(new Uint8Array(der), ID);
    assert.ok(isSameKey(fromDer.publicKey, keys.publicKey), algorithm);
    // Older tools label it NEW CERTIFICATE REQUEST.
    const legacy = await admitCsr(encodePem('NEW CERTIFICATE REQUEST', der), ID);
    assert.equal(legacy.spiffeId.uri, ID);
  }
});

test('admitCsr admits a CSR with an RSA 2048 key', async () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const der = await hostileCsr([{ type: 'url', value: ID }], {
    keys: cryptoPair(rsa, RSA),
    signingAlgorithm: RSA,
  });
  const admitted = await admitCsr(der, ID);
  assert.ok(isSameKey(admitted.publicKey, rsa.publicKey));
});

test('createCsr refuses an invalid SPIFFE ID and an unsupported key', async () => {
  const keys = await generateKeyPair();
  await rejectsCode(
    createCsr({ privateKey: keys.privateKey, spiffeId: 'https://cluster.local/x' }),
    'MUTUAL_SPIFFE_ID_INVALID',
    'bad id',
  );
  const ed = generateKeyPairSync('ed25519');
  await assert.rejects(
    (async () => createCsr({ privateKey: ed.privateKey, spiffeId: ID }))(),
    (error: unknown) => isMutualError(error, 'MUTUAL_PKI_KEY_UNSUPPORTED'),
  );
});

test('admitCsr refuses any name other than exactly the expected URI SAN', async () => {
  const cases: Array<[string, x509.JsonGeneralName[] | undefined, RegExp]> = [
    ['no SAN at all', undefined, /no subjectAltName/],
    [
      'two URI SANs',
      [
        { type: 'url', value: ID },
        { type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/db' },
      ],
      /2 URI SANs/,
    ],
    [
      'the expected URI twice',
      [
        { type: 'url', value: ID },
        { type: 'url', value: ID },
      ],
      /2 URI SANs/,
    ],
    [
      'a DNS SAN beside the ID',
      [
        { type: 'url', value: ID },
        { type: 'dns', value: 'web.shop.svc' },
      ],
      /DNS:web\.shop\.svc/,
    ],
    ['only a DNS SAN', [{ type: 'dns', value: 'web.shop.svc' }], /DNS/],
    [
      'an IP SAN',
      [
        { type: 'url', value: ID },
        { type: 'ip', value: '10.0.0.1' },
      ],
      /IP/,
    ],
    [
      'an e-mail SAN',
      [
        { type: 'url', value: ID },
        { type: 'email', value: 'a@b.c' },
      ],
      /EMAIL/,
    ],
    [
      'another workload of the same trust domain',
      [{ type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/db' }],
      /authenticated as/,
    ],
    [
      'the same path in another trust domain',
      [{ type: 'url', value: 'spiffe://evil.example/ns/shop/sa/web' }],
      /token/,
    ],
    ['the trust domain ID', [{ type: 'url', value: 'spiffe://cluster.local' }], /authenticated as/],
    [
      'case-changed trust domain',
      [{ type: 'url', value: ID.replace('cluster', 'CLUSTER') }],
      /authenticated as/,
    ],
    ['a trailing slash', [{ type: 'url', value: `${ID}/` }], /authenticated as/],
    [
      'a prefix of the ID',
      [{ type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/we' }],
      /authenticated as/,
    ],
    ['the ID with a suffix', [{ type: 'url', value: `${ID}x` }], /authenticated as/],
    ['an https URI', [{ type: 'url', value: 'https://cluster.local/ns/shop/sa/web' }], /authenticated as/],
  ];
  for (const [name, names, message] of cases) {
    await rejectsCode(admitCsr(await hostileCsr(names), ID), 'MUTUAL_PKI_CSR_SAN_INVALID', name, message);
  }
});

test('admitCsr refuses a CSR with a second subjectAltName extension', {}, async () => {
  const der = await hostileCsr([{ type: 'url', value: ID }], {
    extraExtensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://evil.example/x' }]),
    ],
  });
  await rejectsCode(admitCsr(der, ID), 'MUTUAL_PKI_CSR_SAN_INVALID', 'two SAN extensions');
});

test('admitCsr refuses a CSR whose signature does not prove possession of its key', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  assert.ok(await admitCsr(good, ID));

  // Flip a bit in the last byte of the signature.
  const flipped = Buffer.from(good);
  flipped[flipped.length - 1]! ^= 0x01;
  await rejectsCode(admitCsr(flipped, ID), 'MUTUAL_PKI_CSR_SIGNATURE_INVALID', 'flipped signature byte');

  // Rewrite the requested ID in the signed body to the one the token names: same length, so the
  // DER stays well-formed, but the signature no longer covers it.
  const other = 'spiffe://cluster.local/ns/shop/sa/wex';
  const forged = await hostileCsr([{ type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/web' }]);
  const at = Buffer.from(forged).indexOf('sa/web');
  assert.ok(at > 0);
  const edited = Buffer.from(forged);
  edited.write('sa/wex', at, 'latin1');
  await rejectsCode(admitCsr(edited, other), 'MUTUAL_PKI_CSR_SIGNATURE_INVALID', 'edited SAN');

  // Signed by a key other than the one it carries.
  const stranger = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoPair;
  const mismatched = await hostileCsr([{ type: 'url', value: ID }], {
    keys: { privateKey: stranger.privateKey, publicKey: ecPair.publicKey },
  });
  await rejectsCode(admitCsr(mismatched, ID), 'MUTUAL_PKI_CSR_SIGNATURE_INVALID', 'signed by another key');
});

test('admitCsr refuses undecodable and oversized input', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  const truncated = good.subarray(0, good.length - 10);
  const certificateInCsrBlock = encodePem('CERTIFICATE REQUEST', randomBytes(200));
  const cases: Array<[string, string | Uint8Array, ErrorCode[]]> = [
    ['random bytes', randomBytes(300), ['MUTUAL_PKI_CSR_MALFORMED']],
    ['empty bytes', new Uint8Array(0), ['MUTUAL_PKI_CSR_MALFORMED']],
    ['truncated DER', truncated, ['MUTUAL_PKI_CSR_MALFORMED', 'MUTUAL_PKI_CSR_SIGNATURE_INVALID']],
    ['garbage text', 'please sign me', ['MUTUAL_PKI_PEM_MALFORMED']],
    ['empty text', '', ['MUTUAL_PKI_PEM_MALFORMED']],
    ['random DER in a CSR block', certificateInCsrBlock, ['MUTUAL_PKI_CSR_MALFORMED']],
    ['a certificate block', encodePem('CERTIFICATE', good), ['MUTUAL_PKI_PEM_WRONG_TYPE']],
    ['a private key block', encodePem('PRIVATE KEY', good), ['MUTUAL_PKI_PEM_WRONG_TYPE']],
    ['two CSR blocks', encodePem('CERTIFICATE REQUEST', good).repeat(2), ['MUTUAL_PKI_PEM_WRONG_TYPE']],
    ['oversized DER', new Uint8Array(16 * 1024 + 1), ['MUTUAL_PKI_CSR_MALFORMED']],
    ['oversized PEM', encodePem('CERTIFICATE REQUEST', randomBytes(40 * 1024)), ['MUTUAL_PKI_CSR_MALFORMED']],
    ['megabytes of text', 'A'.repeat(8 * 1024 * 1024), ['MUTUAL_PKI_CSR_MALFORMED']],
  ];
  for (const [name, input, codes] of cases) {
    await assert.rejects(
      admitCsr(input, ID),
      (error: unknown) => {
        assert.ok(
          codes.some((code) => isMutualError(error, code)),
          `${name}: expected ${codes.join(' or ')}, got ${String(error)}`,
        );
        return true;
      },
      name,
    );
  }
});

test('admitCsr refuses a CSR with bytes after its DER', {}, async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  await rejectsCode(
    admitCsr(Buffer.concat([good, Buffer.from([0, 0])]), ID),
    'MUTUAL_PKI_CSR_MALFORMED',
    'trailing bytes',
  );
});

test('admitCsr refuses CSR keys Mutual does not accept', async () => {
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const weak = await hostileCsr([{ type: 'url', value: ID }], {
    keys: cryptoPair(rsa1024, RSA),
    signingAlgorithm: RSA,
  });
  await rejectsCode(admitCsr(weak, ID), 'MUTUAL_PKI_KEY_UNSUPPORTED', 'RSA 1024', /CSR key is RSA 1024/);

  const p521 = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, [
    'sign',
    'verify',
  ])) as CryptoPair;
  const p521Csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: p521,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-512' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ID }], true)],
  });
  await rejectsCode(
    admitCsr(new Uint8Array(p521Csr.rawData), ID),
    'MUTUAL_PKI_KEY_UNSUPPORTED',
    'P-521',
    /secp521r1/,
  );
  assert.equal(KeyObject.from(p521.publicKey).asymmetricKeyDetails?.namedCurve, 'secp521r1');
});

test('admitCsr refuses an invalid expected ID before reading the CSR', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  for (const expected of [
    '',
    'cluster.local/ns/shop/sa/web',
    'spiffe://Cluster.local/x',
    'spiffe://cluster.local/a/',
  ]) {
    await rejectsCode(admitCsr(good, expected), 'MUTUAL_SPIFFE_ID_INVALID', JSON.stringify(expected));
  }
});

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SAN = '2.5.29.17';

/**
 * Decodes `der`, lets `edit` change it, then signs the result with node:crypto under any
 * algorithm OID, hash and ECDSA encoding the test names: requests no honest library would build.
 */
function resigned(
  der: Uint8Array,
  privateKey: KeyObject,
  options: {
    edit?: (request: CertificationRequest) => void;
    algorithm?: string;
    hash?: string;
    dsaEncoding?: 'der' | 'ieee-p1363';
  } = {},
): Uint8Array {
  const request = AsnConvert.parse(der, CertificationRequest);
  options.edit?.(request);
  if (options.algorithm)
    request.signatureAlgorithm = new AlgorithmIdentifier({ algorithm: options.algorithm });
  const info = new Uint8Array(AsnConvert.serialize(request.certificationRequestInfo));
  const key =
    privateKey.asymmetricKeyType === 'ec'
      ? { key: privateKey, dsaEncoding: options.dsaEncoding ?? 'der' }
      : privateKey;
  request.signature = new Uint8Array(sign(options.hash ?? 'sha256', info, key)).buffer;
  return new Uint8Array(AsnConvert.serialize(request));
}

/** An extensionRequest attribute holding one SAN extension per set of URIs. */
function extensionRequest(...uriSets: string[][]): Attribute {
  return new Attribute({
    type: EXTENSION_REQUEST,
    values: uriSets.map((uris) =>
      AsnConvert.serialize(
        new Extensions(
          uris.map(
            (uri) =>
              new Extension({
                extnID: SAN,
                critical: true,
                extnValue: new OctetString(
                  new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }]).value,
                ),
              }),
          ),
        ),
      ),
    ),
  });
}

const ecPrivate = KeyObject.from(ecPair.privateKey);

test('resigned() builds CSRs admitCsr accepts, so the refusals below are about the one thing changed', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  assert.ok(await admitCsr(resigned(good, ecPrivate), ID));
  // ECDSA with SHA-384 or SHA-512 over a P-256 key is a valid choice too.
  assert.ok(
    await admitCsr(resigned(good, ecPrivate, { algorithm: '1.2.840.10045.4.3.3', hash: 'sha384' }), ID),
  );
  assert.ok(
    await admitCsr(resigned(good, ecPrivate, { algorithm: '1.2.840.10045.4.3.4', hash: 'sha512' }), ID),
  );
  assert.ok(
    await admitCsr(
      resigned(good, ecPrivate, {
        edit: (r) => {
          r.certificationRequestInfo.attributes = new Attributes([extensionRequest([ID])]);
        },
      }),
      ID,
    ),
  );
});

test('admitCsr refuses a signature algorithm that does not fit the key, a weak one, or a wrong encoding', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaCsr = await hostileCsr([{ type: 'url', value: ID }], {
    keys: cryptoPair(rsa, RSA),
    signingAlgorithm: RSA,
  });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    // An RSA algorithm OID over an EC key: the OID must name the key's own algorithm.
    [
      'RSA OID, EC key',
      resigned(good, ecPrivate, { algorithm: '1.2.840.113549.1.1.11' }),
      /does not fit its ECDSA key/,
    ],
    [
      'ECDSA OID, RSA key',
      resigned(rsaCsr, rsa.privateKey, { algorithm: '1.2.840.10045.4.3.2' }),
      /does not fit its RSA key/,
    ],
    [
      'SHA-1 with RSA',
      resigned(rsaCsr, rsa.privateKey, { algorithm: '1.2.840.113549.1.1.5', hash: 'sha1' }),
      // Named as refused, not as a misfit: SHA-1 with RSA fits an RSA key.
      /^the CSR is signed with sha1WithRSAEncryption \(1\.2\.840\.113549\.1\.1\.5\), which Mutual does not accept; sign it with one of sha256WithRSAEncryption/,
    ],
    [
      'ECDSA with SHA-1',
      resigned(good, ecPrivate, { algorithm: '1.2.840.10045.4.1', hash: 'sha1' }),
      /ecdsa-with-SHA1 .*does not accept; sign it with one of ecdsa-with-SHA256/,
    ],
    [
      'an unknown OID',
      resigned(good, ecPrivate, { algorithm: '1.3.6.1.4.1.99999.1' }),
      /algorithm 1\.3\.6\.1\.4\.1\.99999\.1, which Mutual does not accept/,
    ],
    [
      'SHA-384 signature under the SHA-256 OID',
      resigned(good, ecPrivate, { hash: 'sha384' }),
      /does not verify/,
    ],
    [
      'raw r||s instead of a DER ECDSA signature',
      resigned(good, ecPrivate, { dsaEncoding: 'ieee-p1363' }),
      /does not verify/,
    ],
  ];
  for (const [name, der, message] of cases) {
    await rejectsCode(admitCsr(der, ID), 'MUTUAL_PKI_CSR_SIGNATURE_INVALID', name, message);
  }
  const empty = AsnConvert.parse(good, CertificationRequest);
  empty.signature = new ArrayBuffer(0);
  await rejectsCode(
    admitCsr(new Uint8Array(AsnConvert.serialize(empty)), ID),
    'MUTUAL_PKI_CSR_SIGNATURE_INVALID',
    'empty signature',
  );
});

test('admitCsr sees the SANs of every extension request, however they are split', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  const evil = 'spiffe://cluster.local/ns/shop/sa/db';
  const withAttributes = (...attributes: Attribute[]) =>
    resigned(good, ecPrivate, {
      edit: (request) => {
        request.certificationRequestInfo.attributes = new Attributes(attributes);
      },
    });
  const cases: Array<[string, Uint8Array]> = [
    ['a second extensionRequest attribute', withAttributes(extensionRequest([ID]), extensionRequest([evil]))],
    ['two values in one extensionRequest', withAttributes(extensionRequest([ID], [evil]))],
    ['two SAN extensions in one value', withAttributes(extensionRequest([ID, evil]))],
  ];
  for (const [name, der] of cases) {
    await rejectsCode(admitCsr(der, ID), 'MUTUAL_PKI_CSR_SAN_INVALID', name, /2 subjectAltName extensions/);
  }
  await rejectsCode(
    admitCsr(withAttributes(new Attribute({ type: EXTENSION_REQUEST, values: [] })), ID),
    'MUTUAL_PKI_CSR_SAN_INVALID',
    'an empty extensionRequest',
    /no subjectAltName/,
  );
});

test('admitCsr refuses undecodable parts inside a well-signed CSR', async () => {
  const good = await hostileCsr([{ type: 'url', value: ID }]);
  const withSanBytes = (bytes: Uint8Array) =>
    resigned(good, ecPrivate, {
      edit: (request) => {
        const extensions = new Extensions([
          new Extension({ extnID: SAN, critical: true, extnValue: new OctetString(bytes) }),
        ]);
        request.certificationRequestInfo.attributes = new Attributes([
          new Attribute({ type: EXTENSION_REQUEST, values: [AsnConvert.serialize(extensions)] }),
        ]);
      },
    });
  const cases: Array<[string, Uint8Array]> = [
    ['SAN value is random bytes', withSanBytes(randomBytes(40))],
    ['SAN value is an empty SEQUENCE', withSanBytes(Uint8Array.of(0x30, 0x00))],
    ['SAN value runs past its end', withSanBytes(Uint8Array.of(0x30, 0x05, 0x86, 0x10, 0x61))],
    ['SAN value has bytes after it', withSanBytes(Uint8Array.of(0x30, 0x03, 0x86, 0x01, 0x61, 0x00))],
    ['SAN holds an unknown GeneralName tag', withSanBytes(Uint8Array.of(0x30, 0x03, 0x89, 0x01, 0x61))],
    [
      'extensionRequest value is not Extensions',
      resigned(good, ecPrivate, {
        edit: (request) => {
          request.certificationRequestInfo.attributes = new Attributes([
            new Attribute({ type: EXTENSION_REQUEST, values: [Uint8Array.of(0x04, 0x01, 0x00).buffer] }),
          ]);
        },
      }),
    ],
    [
      'version 2 (1 in DER)',
      resigned(good, ecPrivate, {
        edit: (request) => {
          request.certificationRequestInfo.version = 1;
        },
      }),
    ],
  ];
  for (const [name, der] of cases) {
    await rejectsCode(admitCsr(der, ID), 'MUTUAL_PKI_CSR_MALFORMED', name);
  }
  // Every cut of a good CSR is refused as malformed (or, if it still parsed, unsigned).
  for (let length = 0; length < good.length; length += 7) {
    await assert.rejects(admitCsr(good.subarray(0, length), ID), (error: unknown) => {
      assert.ok(
        isMutualError(error, 'MUTUAL_PKI_CSR_MALFORMED'),
        `cut at ${length}: expected MUTUAL_PKI_CSR_MALFORMED, got ${String(error)}`,
      );
      return true;
    });
  }
});
