// `mutual install` with a CA of the user's own: used exactly as given when the identity service
// would accept it, refused with a coded error when not (mismatched key, expired issuer, issuer
// under another root, a leaf as issuer); cert-manager mode renders no issuer Secret; bad flags.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { ISSUER_SECRET, TRUST_ANCHORS_CONFIG_MAP } from '../../src/k8s/index.ts';
import {
  bundleToPem,
  createIssuer,
  createTrustAnchor,
  createTrustBundle,
  generateKeyPair,
  issueSvid,
  privateKeyToPem,
} from '../../src/pki/index.ts';
import { decodeBase64, findObject, parseObjects, runInstall, validateObject } from './install-harness.ts';

const DAY_MS = 86_400_000;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-install-ca-'));
  const clock = systemClock;
  const anchor = await createTrustAnchor({ trustDomain: 'prod.example', clock });
  const issuer = await createIssuer(anchor, { trustDomain: 'prod.example', clock });
  const otherAnchor = await createTrustAnchor({ trustDomain: 'prod.example', clock });
  const otherIssuer = await createIssuer(otherAnchor, { trustDomain: 'prod.example', clock });
  // Made two years ago for one day: expired now, under an anchor that is still current.
  const past = { now: () => clock.now() - 730 * DAY_MS };
  const oldAnchor = await createTrustAnchor({ trustDomain: 'prod.example', clock: past });
  const expiredIssuer = await createIssuer(oldAnchor, {
    trustDomain: 'prod.example',
    clock: past,
    lifetimeMs: DAY_MS,
  });
  const leafKeys = await generateKeyPair();
  const leaf = await issueSvid(issuer, {
    spiffeId: 'spiffe://prod.example/ns/default/sa/web',
    publicKey: leafKeys.publicKey,
    clock,
  });
  const pem = (authority: typeof anchor) =>
    bundleToPem(createTrustBundle('prod.example', [Buffer.from(authority.certificate.rawData)]));
  const files: Record<string, string> = {
    'anchors.pem': pem(anchor),
    'two-anchors.pem': pem(anchor) + pem(otherAnchor),
    'other-anchors.pem': pem(otherAnchor),
    'old-anchors.pem': pem(oldAnchor),
    'issuer.crt': issuer.certificatePem,
    'issuer.key': privateKeyToPem(issuer.keys.privateKey),
    'other-issuer.key': privateKeyToPem(otherIssuer.keys.privateKey),
    'expired-issuer.crt': expiredIssuer.certificatePem,
    'expired-issuer.key': privateKeyToPem(expiredIssuer.keys.privateKey),
    'leaf.crt': leaf.certificatePem,
    'leaf.key': privateKeyToPem(leafKeys.privateKey),
  };
  for (const [name, contents] of Object.entries(files)) await writeFile(join(dir, name), contents);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const own = (anchors: string, certificate: string, key: string) => [
  '--identity-trust-anchors-file',
  anchors,
  '--identity-issuer-certificate-file',
  certificate,
  '--identity-issuer-key-file',
  key,
];

test('a CA of your own is installed exactly as given, with its trust domain', async () => {
  const run = await runInstall(own('two-anchors.pem', 'issuer.crt', 'issuer.key'), { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  for (const object of objects) validateObject(object);
  const anchors = (findObject(objects, 'ConfigMap', TRUST_ANCHORS_CONFIG_MAP.name) as any).data[
    TRUST_ANCHORS_CONFIG_MAP.key
  ];
  assert.equal(anchors, await readFile(join(dir, 'two-anchors.pem'), 'utf8'));
  const secret = findObject(objects, 'Secret', ISSUER_SECRET.name) as any;
  assert.equal(
    decodeBase64(secret.data[ISSUER_SECRET.certKey]),
    await readFile(join(dir, 'issuer.crt'), 'utf8'),
  );
  assert.equal(
    decodeBase64(secret.data[ISSUER_SECRET.keyKey]),
    await readFile(join(dir, 'issuer.key'), 'utf8'),
  );
  assert.match(run.stdout, /# trust domain: prod\.example/);
});

test('a CA of your own is refused when the identity service would refuse it', async () => {
  const cases: [string, string[], string, RegExp][] = [
    [
      'mismatched key',
      own('anchors.pem', 'issuer.crt', 'other-issuer.key'),
      'MUTUAL_PKI_KEY_MISMATCH',
      /does not belong/,
    ],
    [
      'expired issuer',
      own('old-anchors.pem', 'expired-issuer.crt', 'expired-issuer.key'),
      'MUTUAL_PKI_ISSUER_INVALID',
      /expired at/,
    ],
    [
      'issuer under another root',
      own('other-anchors.pem', 'issuer.crt', 'issuer.key'),
      'MUTUAL_K8S_INSTALL_ISSUER_UNANCHORED',
      /does not chain to any trust anchor.*other-anchors\.pem/,
    ],
    [
      'a leaf as issuer',
      own('anchors.pem', 'leaf.crt', 'leaf.key'),
      'MUTUAL_PKI_ISSUER_INVALID',
      /: \S+leaf\.crt is not a CA certificate \(basicConstraints CA:FALSE or missing: an empty subject like this is a workload certificate\), so it cannot sign; give the issuer CA's certificate and its key instead/,
    ],
    [
      'another trust domain',
      [...own('anchors.pem', 'issuer.crt', 'issuer.key'), '--trust-domain', 'cluster.local'],
      'MUTUAL_PKI_ISSUER_INVALID',
      /: --trust-domain cluster\.local contradicts \S+issuer\.crt, an issuer for trust domain prod\.example: leave --trust-domain out \(it defaults to the issuer's\)/,
    ],
    ['a missing file', own('anchors.pem', 'nope.crt', 'issuer.key'), 'MUTUAL_IO_READ_FAILED', /nope\.crt/],
  ];
  for (const [name, args, code, message] of cases) {
    const run = await runInstall(args, { cwd: dir });
    assert.equal(run.code, 1, name);
    assert.equal(run.stdout, '', `${name}: nothing printed to apply`);
    assert.ok(run.stderr.startsWith(`error[${code}]: `), `${name}: ${run.stderr}`);
    assert.match(run.stderr, message, name);
  }
});

/** An openssl-made intermediate CA under an openssl-made root, with these extra extensions. */
function opensslCa(
  prefix: string,
  intermediateExtensions: string,
  /** null: no subjectAltName, as step makes Linkerd's issuer. */
  uriSan: string | null = 'URI:spiffe://prod.example',
): void {
  const run = (args: readonly string[], input?: string) => {
    const result = spawnSync('openssl', args, {
      cwd: dir,
      encoding: 'utf8',
      ...(input === undefined ? {} : { input }),
    });
    assert.equal(result.status, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
  };
  const config = (name: string, extensions: string) => {
    spawnSync('sh', ['-c', `cat > ${name}`], {
      cwd: dir,
      input: `[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n[ext]\n${extensions}\n`,
    });
    return ['-config', name, '-extensions', 'ext'];
  };
  const [root, issuer] = [`${prefix}-root`, `${prefix}-issuer`];
  for (const name of [root, issuer]) {
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  }
  const rootConfig = config(
    `${root}.cnf`,
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash',
  );
  run([
    'req',
    '-x509',
    '-new',
    '-key',
    `${root}.key`,
    '-subj',
    `/CN=${prefix} root`,
    '-days',
    '30',
    ...rootConfig,
    '-out',
    `${root}.crt`,
  ]);
  config(
    `${issuer}.cnf`,
    'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' +
      `authorityKeyIdentifier=keyid:always\n${uriSan === null ? '' : `subjectAltName=${uriSan}\n`}${intermediateExtensions}`,
  );
  run([
    'req',
    '-new',
    '-key',
    `${issuer}.key`,
    '-subj',
    `/CN=${prefix} issuer`,
    '-config',
    `${issuer}.cnf`,
    '-out',
    `${issuer}.csr`,
  ]);
  run([
    ...['x509', '-req', '-in', `${issuer}.csr`, '-CA', `${root}.crt`, '-CAkey', `${root}.key`, '-days', '10'],
    ...['-extfile', `${issuer}.cnf`, '-extensions', 'ext', '-out', `${issuer}.crt`],
  ]);
}

test('a CA of your own whose certificates no peer would accept is refused, as the identity service refuses it at start', async () => {
  // Both chain to their root and have a matching, current key: only signing and verifying a
  // certificate, as the identity service does before it serves, shows they cannot work.
  opensslCa('eku', 'extendedKeyUsage=serverAuth');
  opensslCa('nc', 'nameConstraints=critical,excluded;URI:prod.example');
  for (const [prefix, message] of [
    [
      'eku',
      /eku-issuer\.crt: certificates signed by CN=eku issuer under these anchors would be refused by every peer; OpenSSL .*INVALID_PURPOSE/,
    ],
    [
      'nc',
      /nc-issuer\.crt: certificates signed by CN=nc issuer .*excluded.*Fix: re-issue the CA with name constraints/,
    ],
  ] as const) {
    const run = await runInstall(own(`${prefix}-root.crt`, `${prefix}-issuer.crt`, `${prefix}-issuer.key`), {
      cwd: dir,
    });
    assert.equal(run.code, 1, `${prefix}: ${run.stdout.slice(0, 200)}`);
    assert.equal(run.stdout, '', `${prefix}: nothing printed to apply`);
    assert.ok(run.stderr.startsWith('error[MUTUAL_PKI_ISSUER_UNVERIFIABLE]: '), `${prefix}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
});

test('an issuer with no spiffe:// URI SAN (made for Linkerd or Istio) is installed for --trust-domain, which the identity service is given', async () => {
  // As Linkerd's docs make it with step: a P-256 intermediate, pathlen 0, no subjectAltName.
  opensslCa('linkerd', '', null);
  const files = own('linkerd-root.crt', 'linkerd-issuer.crt', 'linkerd-issuer.key');
  const refused = await runInstall(files, { cwd: dir });
  assert.equal(refused.code, 1);
  assert.equal(refused.stdout, '');
  assert.match(
    refused.stderr,
    /^error\[MUTUAL_PKI_ISSUER_INVALID\]: \S+linkerd-issuer\.crt: CN=linkerd issuer has no spiffe:\/\/<trust-domain> URI SAN.*name it with --trust-domain <name> \(`mutual identity serve`, `mutual install`/,
  );
  const run = await runInstall([...files, '--trust-domain', 'prod.example'], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  for (const object of objects) validateObject(object);
  const deployment = findObject(objects, 'Deployment', 'mutual-identity') as any;
  const args: string[] = deployment.spec.template.spec.containers[0].args;
  assert.equal(args[args.indexOf('--trust-domain') + 1], 'prod.example', args.join(' '));
  assert.match(run.stdout, /# trust domain: prod\.example/);
});

test('cert-manager mode: the anchors are rendered, the issuer Secret is left to cert-manager', async () => {
  const run = await runInstall(
    ['--identity-external-issuer', '--identity-trust-anchors-file', 'anchors.pem'],
    {
      cwd: dir,
    },
  );
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  assert.equal(
    objects.filter((object) => object.metadata.name === ISSUER_SECRET.name && object.kind === 'Secret')
      .length,
    0,
  );
  findObject(objects, 'ConfigMap', TRUST_ANCHORS_CONFIG_MAP.name);
  const identity = findObject(objects, 'Deployment', 'mutual-identity') as any;
  const volume = identity.spec.template.spec.volumes.find((entry: any) => entry.name === 'issuer');
  assert.equal(volume.secret.secretName, ISSUER_SECRET.name, 'still mounts the Secret cert-manager writes');
  assert.match(run.stdout, /is NOT rendered, cert-manager writes it/);
  // No issuer to read the trust domain from: the anchors' (prod.example), not cluster.local.
  assert.match(run.stdout, /# trust domain: prod\.example/);
  const contradicted = await runInstall(
    [
      '--identity-external-issuer',
      '--identity-trust-anchors-file',
      'anchors.pem',
      '--trust-domain',
      'cluster.local',
    ],
    { cwd: dir },
  );
  assert.equal(contradicted.code, 1);
  assert.equal(contradicted.stdout, '');
  assert.match(
    contradicted.stderr,
    /^error\[MUTUAL_K8S_TRUST_ANCHORS_INVALID\]: the trust anchors in \S+anchors\.pem are for prod\.example, not for the trust domain cluster\.local: .*give --trust-domain prod\.example/,
  );
});

test('--identity-ca-out keeps the generated CA, and it can be brought back', async () => {
  const out = join(dir, 'kept-ca');
  const first = await runInstall(['--identity-ca-out', out], { cwd: dir });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /wrote the generated identity CA/);
  assert.doesNotMatch(first.stderr, /NEW trust anchor/);
  const again = await runInstall(
    own(join(out, 'bundle.pem'), join(out, 'issuer.crt'), join(out, 'issuer.key')),
    {
      cwd: dir,
    },
  );
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr, '', 'the CA brought back: nothing to warn about');
  // Generated and not kept: whoever applies it is told it replaces a running mesh's anchor.
  const fresh = await runInstall([], { cwd: dir });
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(
    fresh.stderr,
    /^! this renders a NEW trust anchor, whose key is not kept: .*--identity-ca-out DIR/,
  );
  assert.doesNotMatch(fresh.stdout, /NEW trust anchor/);
  const anchorsOf = (text: string) =>
    (findObject(parseObjects(text), 'ConfigMap', TRUST_ANCHORS_CONFIG_MAP.name) as any).data[
      TRUST_ANCHORS_CONFIG_MAP.key
    ];
  assert.equal(anchorsOf(again.stdout), anchorsOf(first.stdout));
});

test('every bad flag value is a coded error naming the flag', async () => {
  const cases: [string[], RegExp][] = [
    [['--webhook-failure-policy', 'ignore'], /--webhook-failure-policy "ignore" must be one of Ignore, Fail/],
    [['--image', 'Not An Image'], /--image "Not An Image" is not an image reference/],
    [['--image-pull-policy', 'Sometimes'], /--image-pull-policy "Sometimes"/],
    [
      ['--proxy-default-mode', 'strict'],
      /--proxy-default-mode "strict" must be one of STRICT, PERMISSIVE, DISABLE/,
    ],
    [['--control-plane-replicas', '0'], /--control-plane-replicas "0" must be a whole number from 1 to 10/],
    [['--identity-issuer-lifetime', 'soon'], /--identity-issuer-lifetime "soon" is not a duration/],
    [
      ['--identity-issuer-lifetime', '30m'],
      /--identity-issuer-lifetime "30m" is too short: give at least 1h \(m is minutes/,
    ],
    [['--identity-svid-lifetime', '365d'], /--identity-svid-lifetime 365d is longer than the maximum of 90d/],
    [
      ['--identity-anchor-lifetime', '30d', '--identity-issuer-lifetime', '60d'],
      /must not be longer than --identity-anchor-lifetime/,
    ],
    [
      ['--identity-trust-anchors-file', 'anchors.pem'],
      /needs all three --identity-\* files; missing --identity-issuer-certificate-file, --identity-issuer-key-file/,
    ],
    [['--identity-external-issuer'], /--identity-external-issuer needs --identity-trust-anchors-file/],
    [
      ['--identity-external-issuer', '--identity-trust-anchors-file', 'a', '--identity-issuer-key-file', 'k'],
      /drop --identity-issuer-certificate-file and --identity-issuer-key-file/,
    ],
    [
      [...own('a', 'b', 'c'), '--identity-issuer-lifetime', '30d'],
      /--identity-issuer-lifetime applies only to a generated CA, not with .*; drop it\b/,
    ],
    [
      [...own('a', 'b', 'c'), '--identity-issuer-lifetime', '30d', '--identity-ca-out', 'out'],
      /--identity-issuer-lifetime, --identity-ca-out apply only to a generated CA, not with .*; drop them/,
    ],
    [['--trust-domain', 'Bad_Domain!'], /--trust-domain: /],
  ];
  for (const [args, message] of cases) {
    const run = await runInstall(args, { cwd: dir });
    assert.equal(run.code, 1, args.join(' '));
    assert.ok(
      run.stderr.startsWith('error[MUTUAL_K8S_INSTALL_FLAG_INVALID]: '),
      `${args.join(' ')}: ${run.stderr}`,
    );
    assert.match(run.stderr, message, args.join(' '));
    assert.equal(run.stdout, '');
  }
  // Several problems at once are reported together.
  const many = await runInstall(['--webhook-failure-policy', 'x', '--control-plane-replicas', 'y'], {
    cwd: dir,
  });
  assert.match(
    many.stderr,
    /bad flags:\n {2}- --webhook-failure-policy[^\n]*\n {2}- --control-plane-replicas/,
  );
});
