import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemClock } from '../clock.ts';
import {
  createCsr,
  createIssuer,
  createTrustAnchor,
  createTrustBundle,
  decodePem,
  generateKeyPair,
} from '../pki/index.ts';
import { rejectsCode } from '../testing/expect-error.ts';
import { type AuditLog, openAuditLog } from './audit-log.ts';
import { createCertifier, sourceAddressOf } from './certifier.ts';
import { createJoinTokenAuthenticator, createJoinTokenIssuer } from './join-token.ts';

const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const clock = systemClock;
const anchor = await createTrustAnchor({ trustDomain: TD, clock });
const issuer = await createIssuer(anchor, { trustDomain: TD, clock });
const bundle = createTrustBundle(TD, [decodePem(anchor.certificatePem)[0]!.der]);
const tokenKey = await generateKeyPair();
const token = await createJoinTokenIssuer({ signingKey: tokenKey.privateKey, clock }).mint({
  namespace: 'shop',
  serviceAccount: 'web',
  ttlMs: 60_000,
});

function certifierWith(audit: AuditLog) {
  return createCertifier({
    authenticator: createJoinTokenAuthenticator({
      verificationKey: tokenKey.publicKey,
      trustDomain: TD,
      clock,
    }),
    currentIssuer: () => issuer,
    currentBundle: () => bundle,
    audit,
    clock,
    lifetimeMs: 3_600_000,
    skewMs: 60_000,
  });
}

async function csrFor(spiffeId: string): Promise<string> {
  return createCsr({ privateKey: (await generateKeyPair()).privateKey, spiffeId });
}

test('the audit line of an issuance or a refusal is in the file when certify returns', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-certifier-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'state', 'audit.log');
  const audit = openAuditLog(path);
  const certifier = certifierWith(audit);
  const issued = await certifier.certify({ token, csr: await csrFor(WEB) }, '127.0.0.1:1');
  // Read at once, without waiting for any flush: the line was written before the answer.
  const lines = () =>
    readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
  assert.deepEqual(
    lines().map((entry) => [entry.result, entry.identity, entry.serialNumber]),
    [['issued', WEB, issued.serialNumber]],
  );
  await rejectsCode(
    certifier.certify({ token, csr: await csrFor(`spiffe://${TD}/ns/shop/sa/db`) }, '127.0.0.1:2'),
    'MUTUAL_PKI_CSR_SAN_INVALID',
  );
  assert.deepEqual(lines().at(-1), {
    time: lines().at(-1).time,
    identity: WEB,
    result: 'refused',
    reason: 'MUTUAL_PKI_CSR_SAN_INVALID',
    message: `the CSR asks for "spiffe://${TD}/ns/shop/sa/db" but the caller is authenticated as ${WEB}; the identity comes from the token, not the CSR`,
    requester: '127.0.0.1:2',
    method: 'join-token',
    tokenId: lines().at(0).tokenId,
  });
  assert.match(lines().at(0).tokenId, /^[0-9a-f]{16}$/);
  await audit.close();
  // Reopened after a restart, the history is kept and appended to.
  const reopened = openAuditLog(path);
  await certifierWith(reopened).certify({ token, csr: await csrFor(WEB) }, '127.0.0.1:3');
  await reopened.close();
  assert.deepEqual(
    lines().map((entry) => entry.requester),
    ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'],
  );
});

test('no certificate leaves when its audit line cannot be written', async () => {
  // Every write to /dev/full fails with ENOSPC, like a full disk.
  const audit = openAuditLog('/dev/full');
  const certifier = certifierWith(audit);
  await rejectsCode(
    certifier.certify({ token, csr: await csrFor(WEB) }, '127.0.0.1:1'),
    'MUTUAL_IDENTITY_UNAVAILABLE',
    'disk full',
    /audit log \/dev\/full cannot be written \(ENOSPC\)/,
  );
  await audit.close();
  await rejectsCode(
    certifier.certify({ token, csr: await csrFor(WEB) }, '127.0.0.1:1'),
    'MUTUAL_IDENTITY_UNAVAILABLE',
    'closed',
    /closed/,
  );
});

test('failed authentications are counted by the address alone, not its port; IPv4-mapped as IPv4', () => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1:40000', '127.0.0.1'],
    ['::1:40000', '::1'],
    ['::ffff:10.1.2.3:5000', '10.1.2.3'],
    ['::FFFF:a01:203:5000', '10.1.2.3'],
    ['FD00:0::5:443', 'fd00::5'],
    ['fd00::5:443', 'fd00::5'],
    ['unknown:0', 'unknown'],
  ];
  for (const [requester, address] of cases) assert.equal(sourceAddressOf(requester), address, requester);
});
