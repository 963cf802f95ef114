// Makes the certificates the golden tests read (test/golden/fixtures/), once: keys and serial
// numbers are random, so the goldens hold only if these files stay as they are. Regenerate with
// `node dist/test/golden/make-fixtures.js`, then `UPDATE_GOLDEN=1` the golden tests.
//
// Times are fixed around GOLDEN_NOW (2030-01-01T00:00:00Z): the anchor lives ten years, the issuer
// 60 days from 2029-12-01 (so it is inside the 60-day warning), web's certificate is two hours old
// and cart's 20 hours old (past its renewal time at 70 %).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixedClock } from '../../src/clock.ts';
import { identityServiceId } from '../../src/identity/index.ts';
import {
  createIssuer,
  createTrustAnchor,
  generateKeyPair,
  issueSvid,
  privateKeyToPem,
} from '../../src/pki/index.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

export const GOLDEN_NOW = Date.parse('2030-01-01T00:00:00Z');
export const GOLDEN_TRUST_DOMAIN = 'example.org';
const HOUR = 3_600_000;

async function main() {
  const dir = join(repoRoot(), 'test', 'golden', 'fixtures');
  const td = GOLDEN_TRUST_DOMAIN;
  const anchor = await createTrustAnchor({
    trustDomain: td,
    clock: fixedClock(Date.parse('2029-12-01T00:00:00Z')),
  });
  const issuer = await createIssuer(anchor, {
    trustDomain: td,
    clock: fixedClock(Date.parse('2029-12-01T00:00:00Z')),
    lifetimeMs: 60 * 24 * HOUR,
  });
  const leaf = async (spiffeId: string, issuedAgoMs: number) => {
    const keys = await generateKeyPair();
    const svid = await issueSvid(issuer, {
      spiffeId,
      publicKey: keys.publicKey,
      clock: fixedClock(GOLDEN_NOW - issuedAgoMs),
    });
    return { chainPem: svid.chainPem, keyPem: privateKeyToPem(keys.privateKey) };
  };
  const identity = await leaf(identityServiceId(td), HOUR);
  const web = await leaf(`spiffe://${td}/ns/shop/sa/web`, 2 * HOUR);
  const cart = await leaf(`spiffe://${td}/ns/shop/sa/cart`, 20 * HOUR);
  await mkdir(join(dir, 'ca'), { recursive: true });
  const files: Record<string, string> = {
    'ca/bundle.pem': anchor.certificatePem,
    'ca/issuer.crt': issuer.certificatePem,
    'ca/issuer.key': privateKeyToPem(issuer.keys.privateKey),
    'identity-service.pem': identity.chainPem,
    'identity-service.key': identity.keyPem,
    'web.pem': web.chainPem,
    'cart.pem': cart.chainPem,
  };
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  console.log(`wrote ${Object.keys(files).length} files to ${dir}`);
}

if (process.argv[1]?.endsWith('make-fixtures.js')) await main();
