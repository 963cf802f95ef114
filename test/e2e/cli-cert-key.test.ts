// `mutual cert verify --key`: whether a private key is its certificate's own. A cert.pem with
// another workload's key.pem passes every chain check; only the sidecar refused the pair
// (MUTUAL_PKI_KEY_MISMATCH), whose hint said "`mutual cert inspect` shows the key fingerprint",
// which it does not, and `mutual check --proxy` advises `mutual cert verify` for refused files.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-cli-cert-key-'));
  await createCa(join(dir, 'ca'));
  for (const name of ['web', 'emoji']) {
    const issued = await runMutual([
      ...['cert', 'issue', '--ca', join(dir, 'ca'), '--out', join(dir, name)],
      ...['--spiffe-id', `spiffe://cluster.local/ns/demo/sa/${name}`],
    ]);
    assert.equal(issued.code, 0, issued.stderr);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const verify = (cert: string, key: string, ...more: string[]) =>
  runMutual(['cert', 'verify', '--bundle', 'ca/bundle.pem', '--cert', cert, '--key', key, ...more], {
    cwd: dir,
  });

test('cert verify --key: its own key (PKCS#8 or SEC1) passes; another certificate’s key fails, naming both files', async () => {
  const own = await verify('web/cert.pem', 'web/key.pem');
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stdout, /key +web\/key\.pem is the leaf's own/);

  const sec1 = createPrivateKey(await readFile(join(dir, 'web', 'key.pem'), 'utf8')).export({
    type: 'sec1',
    format: 'pem',
  });
  await writeFile(join(dir, 'web-sec1.pem'), sec1, { mode: 0o600 });
  assert.equal((await verify('web/cert.pem', 'web-sec1.pem')).code, 0);

  const other = await verify('web/cert.pem', 'emoji/key.pem');
  assert.equal(other.code, 1, other.stdout);
  assert.match(
    other.stderr,
    /invalid: MUTUAL_PKI_KEY_MISMATCH\n\s+emoji\/key\.pem is not the key of the first certificate in web\/cert\.pem \(spiffe:\/\/cluster\.local\/ns\/demo\/sa\/web, serial [0-9a-f]+\)/,
  );
  assert.match(other.stderr, /hint: .*mutual cert verify --bundle BUNDLE --cert CERT --key KEY/);
  assert.doesNotMatch(other.stderr, /cert inspect/);
  const json = JSON.parse((await verify('web/cert.pem', 'emoji/key.pem', '-o', 'json')).stdout);
  assert.equal(json.valid, false);
  assert.equal(json.code, 'MUTUAL_PKI_KEY_MISMATCH');

  const swapped = await verify('web/cert.pem', 'web/cert.pem');
  assert.equal(swapped.code, 1);
  assert.match(swapped.stderr, /MUTUAL_PKI_PEM_WRONG_TYPE/);
});

test('cert inspect of a key file says what key it is and how to check it against its certificate', async () => {
  const pkcs8 = await runMutual(['cert', 'inspect', 'web/key.pem'], { cwd: dir });
  assert.equal(pkcs8.code, 1);
  assert.match(
    pkcs8.stderr,
    /error\[MUTUAL_PKI_PEM_WRONG_TYPE\]: web\/key\.pem holds a private key \(PKCS#8, ECDSA P-256\), not a certificate; .*`mutual cert verify --bundle BUNDLE --cert CERT --key web\/key\.pem`/,
  );
  const sec1 = await runMutual(['cert', 'inspect', 'web-sec1.pem'], { cwd: dir });
  assert.match(sec1.stderr, /web-sec1\.pem holds a private key \(SEC1, ECDSA P-256\)/);
});
