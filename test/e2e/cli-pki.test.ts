import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { runMutual } from './run-mutual.ts';

let dir: string;
const web = 'spiffe://cluster.local/ns/demo/sa/web';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-cli-'));
  const created = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--out',
    join(dir, 'ca'),
  ]);
  assert.equal(created.code, 0, created.stderr);
  const issued = await runMutual([
    'cert',
    'issue',
    '--ca',
    join(dir, 'ca'),
    '--spiffe-id',
    web,
    '--out',
    join(dir, 'web'),
    '--dns',
    'web.demo',
  ]);
  assert.equal(issued.code, 0, issued.stderr);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('ca create writes the CA with private keys readable only by the owner', async () => {
  for (const name of ['trust-anchor.key', 'issuer.key']) {
    assert.equal((await stat(join(dir, 'ca', name))).mode & 0o777, 0o600, name);
  }
  const jwks = JSON.parse(await readFile(join(dir, 'ca', 'bundle.jwks.json'), 'utf8'));
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].use, 'x509-svid');
  assert.equal((await stat(join(dir, 'web', 'key.pem'))).mode & 0o777, 0o600);
});

test('ca create never overwrites an existing CA', async () => {
  const before = await readFile(join(dir, 'ca', 'issuer.key'), 'utf8');
  const again = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--out',
    join(dir, 'ca'),
  ]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /error\[MUTUAL_IO_ALREADY_EXISTS\]/);
  assert.equal(await readFile(join(dir, 'ca', 'issuer.key'), 'utf8'), before);
});

test('cert inspect shows the SPIFFE ID, the chain and the expiry, as text and JSON', async () => {
  const text = await runMutual(['cert', 'inspect', join(dir, 'web', 'cert.pem')]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /Certificate 1 of 2 \(leaf\)/);
  assert.match(text.stdout, new RegExp(`SPIFFE ID +${web}`));
  assert.match(text.stdout, /DNS:web\.demo/);
  assert.match(text.stdout, /expires in 2[34]h/);
  assert.match(text.stdout, /Certificate 2 of 2 \(intermediate CA\)/);
  const json = await runMutual(['cert', 'inspect', join(dir, 'web', 'cert.pem'), '-o', 'json']);
  const views = JSON.parse(json.stdout);
  assert.equal(views[0].spiffeId, web);
  assert.deepEqual(views[0].extKeyUsage, ['serverAuth', 'clientAuth']);
  assert.equal(views[1].isCa, true);
  assert.equal(views[1].pathLength, 0);
});

test('cert verify accepts the chain and reports the SPIFFE ID', async () => {
  const bundle = join(dir, 'ca', 'bundle.pem');
  const cert = join(dir, 'web', 'cert.pem');
  const ok = await runMutual(['cert', 'verify', '--bundle', bundle, '--cert', cert, '--spiffe-id', web]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.split('\n')[0], web);
  const jwks = await runMutual([
    'cert',
    'verify',
    '--bundle',
    join(dir, 'ca', 'bundle.jwks.json'),
    '--cert',
    cert,
  ]);
  assert.equal(jwks.code, 0, jwks.stderr);
});

test('cert verify fails with a reason code: wrong ID, expired, not yet valid, foreign root', async () => {
  const bundle = join(dir, 'ca', 'bundle.pem');
  const cert = join(dir, 'web', 'cert.pem');
  const cases: Array<[string[], RegExp]> = [
    [['--spiffe-id', 'spiffe://cluster.local/ns/demo/sa/voting'], /MUTUAL_PKI_SPIFFE_ID_MISMATCH/],
    [['--at', '+2d'], /MUTUAL_PKI_CERT_EXPIRED/],
    [['--at', '-1h'], /MUTUAL_PKI_CERT_NOT_YET_VALID/],
  ];
  for (const [extra, reason] of cases) {
    const result = await runMutual(['cert', 'verify', '--bundle', bundle, '--cert', cert, ...extra]);
    assert.equal(result.code, 1, extra.join(' '));
    assert.match(result.stderr, reason);
  }
  const other = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--out',
    join(dir, 'other'),
  ]);
  assert.equal(other.code, 0);
  const foreign = await runMutual([
    'cert',
    'verify',
    '--bundle',
    join(dir, 'other', 'bundle.pem'),
    '--cert',
    cert,
  ]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /MUTUAL_PKI_CHAIN_UNTRUSTED/);
});

test('cert verify: a chain in the wrong order says so; every refusal carries a hint', async () => {
  const pem = await readFile(join(dir, 'web', 'cert.pem'), 'utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g) ?? [];
  assert.equal(blocks.length, 2);
  await writeFile(join(dir, 'reversed.pem'), [...blocks].reverse().join(''));
  const result = await runMutual([
    'cert',
    'verify',
    '--bundle',
    join(dir, 'ca', 'bundle.pem'),
    '--cert',
    join(dir, 'reversed.pem'),
  ]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^invalid: MUTUAL_PKI_CA_AS_LEAF\n/);
  assert.match(
    result.stderr,
    /certificate 2 of 2 in \S+reversed\.pem is the leaf: put the leaf first, then its intermediates/,
  );
  assert.match(result.stderr, /\n {2}hint: /);
});

test('cert verify reads a DER certificate as cert inspect does; an empty file is named as empty', async () => {
  // A leaf signed by the root itself verifies alone; a mesh leaf in DER lacks its intermediate.
  await mkdir(join(dir, 'root-ca'));
  for (const [from, to] of [
    ['trust-anchor.crt', 'issuer.crt'],
    ['trust-anchor.key', 'issuer.key'],
    ['trust-anchor.crt', 'bundle.pem'],
  ] as const) {
    await writeFile(join(dir, 'root-ca', to), await readFile(join(dir, 'ca', from)));
  }
  const direct = 'spiffe://cluster.local/ns/demo/sa/direct';
  const issued = await runMutual([
    'cert',
    'issue',
    '--ca',
    join(dir, 'root-ca'),
    '--spiffe-id',
    direct,
    '--out',
    join(dir, 'direct'),
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  for (const name of ['direct', 'web']) {
    const leaf = new X509Certificate(await readFile(join(dir, name, 'cert.pem')));
    await writeFile(join(dir, `${name}.der`), leaf.raw);
  }
  const bundle = join(dir, 'ca', 'bundle.pem');
  const ok = await runMutual([
    'cert',
    'verify',
    '--bundle',
    bundle,
    '--cert',
    join(dir, 'direct.der'),
    '--spiffe-id',
    direct,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.split('\n')[0], direct);
  const alone = await runMutual(['cert', 'verify', '--bundle', bundle, '--cert', join(dir, 'web.der')]);
  assert.equal(alone.code, 1, alone.stderr);
  assert.match(alone.stderr, /^invalid: MUTUAL_PKI_CHAIN_UNTRUSTED\n/);
  assert.match(
    alone.stderr,
    /\S+web\.der is DER, one certificate without its intermediates: give the PEM chain/,
  );
  const inspected = await runMutual(['cert', 'inspect', join(dir, 'web.der')]);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.match(inspected.stdout, new RegExp(`SPIFFE ID +${web}`));

  for (const [name, content] of [
    ['empty.pem', ''],
    ['blank.pem', '\n  \n'],
  ] as const) {
    await writeFile(join(dir, name), content);
    for (const args of [
      ['cert', 'inspect', join(dir, name)],
      ['cert', 'verify', '--bundle', bundle, '--cert', join(dir, name)],
    ]) {
      const result = await runMutual(args);
      assert.equal(result.code, 1, args.join(' '));
      assert.match(
        result.stderr,
        /^error\[MUTUAL_PKI_PEM_MALFORMED\]: \S+\.pem is empty: give a file holding the certificate \(PEM, or one DER certificate\)\n {2}hint: /,
        args.join(' '),
      );
    }
  }
});

test('bad input gets a coded error and a hint, never a stack trace', async () => {
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  await writeFile(join(dir, 'rsa1024.pem'), rsa1024.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(join(dir, 'garbage.pem'), 'not a certificate at all');
  // A CA directory whose issuer.key holds the certificate, and one whose key is a stranger's RSA 2048 key.
  for (const [name, key] of [
    ['cert-as-key', await readFile(join(dir, 'ca', 'issuer.crt'))],
    [
      'rsa-key',
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    ],
  ] as const) {
    await mkdir(join(dir, name));
    for (const file of ['issuer.crt', 'bundle.pem']) {
      await writeFile(join(dir, name, file), await readFile(join(dir, 'ca', file)));
    }
    await writeFile(join(dir, name, 'issuer.key'), key);
  }
  const cases: Array<[string[], RegExp, number]> = [
    [['cert', 'inspect', join(dir, 'web', 'key.pem')], /MUTUAL_PKI_PEM_WRONG_TYPE.*private key/s, 1],
    [['cert', 'inspect', join(dir, 'garbage.pem')], /MUTUAL_PKI_PEM_MALFORMED/, 1],
    [['cert', 'inspect', join(dir, 'missing.pem')], /MUTUAL_IO_READ_FAILED.*does not exist/, 1],
    [['cert', 'inspect', dir], /MUTUAL_IO_READ_FAILED/, 1],
    [
      ['ca', 'create', '--trust-domain', 'Cluster.Local', '--out', join(dir, 'x')],
      /MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID.*lower case/,
      1,
    ],
    [['ca', 'create', '--out', join(dir, 'x')], /MUTUAL_CLI_USAGE.*--trust-domain/, 2],
    [
      ['ca', 'create', '--trust-domain', 'td', '--out', join(dir, 'y'), '--issuer-lifetime', '12'],
      /MUTUAL_CLI_USAGE.*--issuer-lifetime/,
      2,
    ],
    [
      // 30m is 30 minutes: a CA that would expire within the hour is refused, with the likely slip.
      ['ca', 'create', '--trust-domain', 'td', '--out', join(dir, 'y'), '--issuer-lifetime', '30m'],
      /MUTUAL_CLI_USAGE\]: --issuer-lifetime "30m" is too short: give 1h to 100y \(m is minutes; for months write days, e\.g\. 90d\)/,
      2,
    ],
    [
      ['ca', 'create', '--trust-domain', 'td', '--out', join(dir, 'y'), '--anchor-lifetime', '1s'],
      /MUTUAL_CLI_USAGE\]: --anchor-lifetime "1s" is too short: give 1h to 100y$/m,
      2,
    ],
    [
      [
        'cert',
        'issue',
        '--ca',
        join(dir, 'ca'),
        '--spiffe-id',
        'spiffe://other.td/ns/a/sa/b',
        '--out',
        join(dir, 'z'),
      ],
      /MUTUAL_PKI_TRUST_DOMAIN_REJECTED/,
      1,
    ],
    [
      [
        'cert',
        'issue',
        '--ca',
        join(dir, 'ca'),
        '--spiffe-id',
        web,
        '--out',
        join(dir, 'z'),
        '--lifetime',
        '9999d',
      ],
      /MUTUAL_PKI_LIFETIME_INVALID\]: --lifetime "9999d" is longer than the maximum of 90d: give 1s to 90d\n/,
      1,
    ],
    [
      ['cert', 'verify', '--bundle', join(dir, 'rsa1024.pem'), '--cert', join(dir, 'web', 'cert.pem')],
      /MUTUAL_PKI_PEM_WRONG_TYPE/,
      1,
    ],
    [
      ['cert', 'verify', '--bundle', join(dir, 'web', 'cert.pem'), '--cert', join(dir, 'web', 'cert.pem')],
      /MUTUAL_PKI_BUNDLE_INVALID.*not a CA/,
      1,
    ],
    [['spiffe', 'parse', 'spiffe://cluster.local/ns//sa/web'], /MUTUAL_SPIFFE_ID_INVALID.*empty segment/, 1],
    [
      [
        'cert',
        'verify',
        '--bundle',
        join(dir, 'ca', 'bundle.pem'),
        '--cert',
        join(dir, 'web', 'cert.pem'),
        '--spiffe-id',
        `${web}/`,
      ],
      /MUTUAL_SPIFFE_ID_INVALID.*ends with "\/"/,
      1,
    ],
    [
      [
        'identity',
        'token',
        'create',
        '--ns',
        'demo',
        '--sa',
        'web',
        '--state-dir',
        join(dir, 'web', 'cert.pem'),
      ],
      /MUTUAL_IO_WRITE_FAILED.*state directory.*a file is in the way/,
      1,
    ],
    [
      ['cert', 'issue', '--ca', join(dir, 'ca'), '--spiffe-id', web, '--out', join(dir, 'web', 'cert.pem')],
      /MUTUAL_IO_WRITE_FAILED\]: --out \S+cert\.pem is a file, not a directory: it names the directory for cert\.pem, key\.pem, bundle\.pem: give a new path/,
      1,
    ],
    [
      // A level that answers ENOENT although its parent exists: Node's own recursive mkdir spun
      // forever on it.
      ['ca', 'create', '--trust-domain', 'td', '--out', '/proc/mutual-no-such-dir/ca'],
      /MUTUAL_IO_WRITE_FAILED\]: cannot write \/proc\/mutual-no-such-dir\/ca: ENOENT/,
      1,
    ],
    [
      ['ca', 'create', '--trust-domain', 'td', '--out', join(dir, 'web', 'cert.pem', 'ca')],
      /MUTUAL_IO_WRITE_FAILED\]: --out \S+ runs through \S+cert\.pem, which is a file, not a directory: it names the directory for trust-anchor/,
      1,
    ],
    [
      [
        'identity',
        'token',
        'create',
        '--ns',
        'a',
        '--sa',
        'b',
        '--state-dir',
        join(dir, 'state'),
        '--ttl',
        '9999d',
      ],
      /MUTUAL_CLI_USAGE\]: --ttl "9999d" is longer than the maximum of 365d: give 1s to 365d\n/,
      2,
    ],
    [
      ['cert', 'issue', '--ca', join(dir, 'ca'), '--spiffe-id', web, '--out', join(dir, 'z'), '--skew', '2h'],
      /MUTUAL_PKI_LIFETIME_INVALID\]: --skew "2h" is longer than the maximum of 1h: give 0s to 1h\n/,
      1,
    ],
    [
      [
        'cert',
        'issue',
        '--ca',
        join(dir, 'ca'),
        '--spiffe-id',
        web,
        '--out',
        join(dir, 'z'),
        '--lifetime',
        '0s',
      ],
      /MUTUAL_PKI_LIFETIME_INVALID\]: --lifetime "0s" is too short: give 1s to 90d\n/,
      1,
    ],
    [['cert', 'bogus'], /MUTUAL_CLI_USAGE/, 2],
    [
      [
        'cert',
        'verify',
        '--bundle',
        join(dir, 'ca', 'bundle.pem'),
        '--cert',
        join(dir, 'web', 'cert.pem'),
        '--at',
        '+2d',
        '--skew',
        '100y',
      ],
      /MUTUAL_CLI_USAGE\]: --skew "100y" is longer than the maximum of 1h: give 0s to 1h\n/,
      2,
    ],
    [
      ['cert', 'issue', '--ca', join(dir, 'cert-as-key'), '--spiffe-id', web, '--out', join(dir, 'z')],
      /MUTUAL_PKI_PEM_WRONG_TYPE\]: \S+cert-as-key\/issuer\.key: expected exactly one private key PEM block but found: CERTIFICATE/,
      1,
    ],
    [
      ['cert', 'issue', '--ca', join(dir, 'rsa-key'), '--spiffe-id', web, '--out', join(dir, 'z')],
      /MUTUAL_PKI_KEY_MISMATCH\]: \S+rsa-key\/issuer\.crt: the private key in \S+rsa-key\/issuer\.key does not belong/,
      1,
    ],
    ...(
      [
        [
          '--client-timeout',
          '0s',
          /MUTUAL_CLI_USAGE\]: --client-timeout "0s" is too short: give 1s to 10m\n/,
          2,
        ],
        [
          '--client-timeout',
          '100y',
          /MUTUAL_CLI_USAGE\]: --client-timeout "100y" is longer than the maximum of 10m/,
          2,
        ],
        [
          '--skew',
          '100y',
          /MUTUAL_PKI_LIFETIME_INVALID\]: --skew "100y" is longer than the maximum of 1h: give 0s to 1h\n/,
          1,
        ],
        [
          '--lifetime',
          '0s',
          /MUTUAL_PKI_LIFETIME_INVALID\]: --lifetime "0s" is too short: give 1s to 90d\n/,
          1,
        ],
      ] as const
    ).map(([flag, value, pattern, code]): [string[], RegExp, number] => [
      [
        'identity',
        'serve',
        '--ca',
        join(dir, 'ca'),
        '--state-dir',
        join(dir, 'serve-state'),
        '--listen',
        '127.0.0.1:0',
        '--admin-listen',
        '127.0.0.1:0',
        flag,
        value,
      ],
      pattern,
      code,
    ]),
    ...(
      [
        ['0s', /MUTUAL_CLI_USAGE\]: --client-timeout "0s" is too short: give 1s to 10m\n/],
        ['100y', /MUTUAL_CLI_USAGE\]: --client-timeout "100y" is longer than the maximum of 10m/],
      ] as const
    ).map(([value, pattern]): [string[], RegExp, number] => [
      [
        'inject',
        'serve',
        '--cert',
        join(dir, 'web', 'cert.pem'),
        '--key',
        join(dir, 'web', 'key.pem'),
        '--trust-anchors-file',
        join(dir, 'ca', 'bundle.pem'),
        '--listen',
        '127.0.0.1:0',
        '--admin-listen',
        'off',
        '--client-timeout',
        value,
      ],
      pattern,
      2,
    ]),
    [
      ['install', '--identity-ca-out', join(dir, 'ca')],
      /MUTUAL_IO_ALREADY_EXISTS\]: refusing to overwrite .*issuer\.key, .*; choose another --identity-ca-out directory/,
      1,
    ],
    [
      ['install', '--identity-ca-out', join(dir, 'web', 'cert.pem')],
      /MUTUAL_IO_WRITE_FAILED\]: --identity-ca-out \S+cert\.pem is a file, not a directory/,
      1,
    ],
  ];
  for (const [args, pattern, code] of cases) {
    const result = await runMutual(args);
    assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern, args.join(' '));
    assert.match(result.stderr, /hint: /, args.join(' '));
    assert.doesNotMatch(result.stderr, /\n\s+at /, `stack trace for ${args.join(' ')}`);
  }
});

test('cert issue refuses a CA directory whose bundle.pem does not trust its issuer, writing nothing', async () => {
  // A stranger copies bundle.pem from another CA: the certificate would not verify against the
  // bundle.pem written beside it, so nothing is issued.
  const other = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--out',
    join(dir, 'second-ca'),
  ]);
  assert.equal(other.code, 0, other.stderr);
  await mkdir(join(dir, 'mixed'));
  for (const name of ['issuer.crt', 'issuer.key']) {
    await writeFile(join(dir, 'mixed', name), await readFile(join(dir, 'ca', name)));
  }
  await writeFile(join(dir, 'mixed', 'bundle.pem'), await readFile(join(dir, 'second-ca', 'bundle.pem')));
  const result = await runMutual([
    'cert',
    'issue',
    '--ca',
    join(dir, 'mixed'),
    '--spiffe-id',
    web,
    '--out',
    join(dir, 'mixed-web'),
  ]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    /error\[MUTUAL_PKI_CHAIN_UNTRUSTED\]: \S+mixed\/issuer\.crt: the issuer .* does not chain to any trust anchor .* in \S+mixed\/bundle\.pem/,
  );
  assert.match(result.stderr, /hint: /);
  await assert.rejects(stat(join(dir, 'mixed-web')), { code: 'ENOENT' });
});

test('an empty path (an unset shell variable) is a usage error, never the current directory', async () => {
  const cases: string[][] = [
    ['ca', 'create', '--trust-domain', 'cluster.local', '--out', ''],
    ['cert', 'issue', '--ca', join(dir, 'ca'), '--spiffe-id', web, '--out', ''],
    ['identity', 'token', 'create', '--ns', 'demo', '--sa', 'web', '--state-dir', ''],
    ['install', '--identity-ca-out', ''],
  ];
  const cwd = await mkdtemp(join(tmpdir(), 'mutual-cli-cwd-'));
  try {
    for (const args of cases) {
      const flag = args.at(-2)!;
      const result = await runMutual(args, { cwd });
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(`^error\\[MUTUAL_CLI_USAGE\\]: ${flag} is empty: give a directory`),
        flag,
      );
      assert.equal(result.stdout, '', flag);
      assert.deepEqual(await readdir(cwd), [], `${args.join(' ')} wrote into the current directory`);
    }
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
});

test('spiffe parse shows the parts of a mesh identity', async () => {
  const result = await runMutual(['spiffe', 'parse', web, '-o', 'json']);
  assert.equal(result.code, 0);
  assert.deepEqual(JSON.parse(result.stdout), {
    id: web,
    trustDomain: 'cluster.local',
    path: '/ns/demo/sa/web',
    namespace: 'demo',
    serviceAccount: 'web',
  });
});

test('ca issuer: a new issuer under the same anchor; certificates it signs verify against the unchanged bundle', async () => {
  const rotation = join(dir, 'rotation');
  const created = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--out',
    join(rotation, 'ca'),
  ]);
  assert.equal(created.code, 0, created.stderr);
  const before = await readFile(join(rotation, 'ca', 'issuer.crt'), 'utf8');
  const next = await runMutual([
    'ca',
    'issuer',
    '--ca',
    join(rotation, 'ca'),
    '--out',
    join(rotation, 'next'),
  ]);
  assert.equal(next.code, 0, next.stderr);
  assert.match(next.stdout, /Created an issuer under the trust anchor .*cluster\.local/);
  assert.match(next.stdout, /cp \S+issuer\.key \S+issuer\.crt \S+ca/);
  assert.deepEqual((await readdir(join(rotation, 'next'))).sort(), ['issuer.crt', 'issuer.key']);
  assert.equal((await stat(join(rotation, 'next', 'issuer.key'))).mode & 0o777, 0o600);
  const anchor = new X509Certificate(await readFile(join(rotation, 'ca', 'trust-anchor.crt')));
  const issuer = new X509Certificate(await readFile(join(rotation, 'next', 'issuer.crt')));
  assert.ok(issuer.ca && issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey));
  assert.notEqual(issuer.toString(), new X509Certificate(before).toString());
  // Rotated into the CA directory: the next certificate comes from it and verifies as before.
  for (const name of ['issuer.crt', 'issuer.key'])
    await writeFile(join(rotation, 'ca', name), await readFile(join(rotation, 'next', name)));
  const issued = await runMutual([
    'cert',
    'issue',
    '--ca',
    join(rotation, 'ca'),
    '--spiffe-id',
    web,
    '--out',
    join(rotation, 'w'),
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  assert.ok(new X509Certificate(await readFile(join(rotation, 'w', 'cert.pem'))).checkIssued(issuer));
  const verified = await runMutual([
    'cert',
    'verify',
    '--cert',
    join(rotation, 'w', 'cert.pem'),
    '--bundle',
    join(rotation, 'ca', 'bundle.pem'),
  ]);
  assert.equal(verified.code, 0, verified.stderr);

  // -o json, as ca create: the new issuer, the anchor it is under, the files.
  const json = await runMutual([
    'ca',
    'issuer',
    '--ca',
    join(rotation, 'ca'),
    '--out',
    join(rotation, 'j'),
    '-o',
    'json',
  ]);
  assert.equal(json.code, 0, json.stderr);
  const summary = JSON.parse(json.stdout);
  assert.equal(summary.trustDomain, 'cluster.local');
  assert.equal(summary.trustAnchor.subject, anchor.subject.replaceAll('\n', ', '));
  const written = new X509Certificate(await readFile(join(rotation, 'j', 'issuer.crt')));
  assert.equal(summary.issuer.subject, written.subject.replaceAll('\n', ', '));
  assert.equal(Date.parse(summary.issuer.notAfter), Date.parse(written.validTo));
  assert.equal(summary.issuer.isNameConstrained, true);
  assert.deepEqual(summary.files.map((file: string) => file.slice(join(rotation, 'j').length + 1)).sort(), [
    'issuer.crt',
    'issuer.key',
  ]);

  // The anchor key kept offline: the error says which file, and nothing is written.
  await rm(join(rotation, 'ca', 'trust-anchor.key'));
  const offline = await runMutual([
    'ca',
    'issuer',
    '--ca',
    join(rotation, 'ca'),
    '--out',
    join(rotation, 'again'),
  ]);
  assert.equal(offline.code, 1);
  assert.match(offline.stderr, /trust-anchor\.key/);
  await assert.rejects(stat(join(rotation, 'again')));
});

test('cert issue from a CA made by openssl (no spiffe:// URI SAN): the trust domain is the one --spiffe-id names', async () => {
  const openssl = (...args: string[]) => promisify(execFile)('openssl', args);
  const caDir = join(dir, 'openssl-ca');
  await mkdir(caDir, { recursive: true });
  await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(caDir, 'issuer.key'));
  await openssl(
    ...['req', '-x509', '-new', '-key', join(caDir, 'issuer.key'), '-subj', '/CN=My Root', '-days', '30'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', join(caDir, 'issuer.crt')],
  );
  await writeFile(join(caDir, 'bundle.pem'), await readFile(join(caDir, 'issuer.crt')));
  const out = join(dir, 'from-openssl-ca');
  const id = 'spiffe://example.org/ns/demo/sa/api';
  // Before: MUTUAL_PKI_ISSUER_INVALID '… has no spiffe://<trust-domain> URI SAN …: name it with
  // --trust-domain <name>', an option cert issue does not have.
  const issued = await runMutual(['cert', 'issue', '--ca', caDir, '--spiffe-id', id, '--out', out]);
  assert.equal(issued.code, 0, issued.stderr);
  assert.match(issued.stdout, /Issued spiffe:\/\/example\.org\/ns\/demo\/sa\/api/);
  const verified = await runMutual([
    ...['cert', 'verify', '--bundle', join(out, 'bundle.pem'), '--cert', join(out, 'cert.pem')],
    ...['--key', join(out, 'key.pem'), '--spiffe-id', id],
  ]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  for (const purpose of ['sslclient', 'sslserver']) {
    const { stdout } = await openssl(
      ...['verify', '-x509_strict', '-purpose', purpose, '-CAfile', join(out, 'bundle.pem')],
      join(out, 'cert.pem'),
    );
    assert.match(stdout, /: OK/);
  }
});

test('cert issue --dns refuses an IP address, which as a DNS SAN matches no client, writing nothing', async () => {
  for (const address of ['127.0.0.1', '::1']) {
    const out = join(dir, `dns-ip-${address.replaceAll(':', '')}`);
    // Before, 127.0.0.1 was issued as DNS:127.0.0.1, and curl https://127.0.0.1:PORT/ still failed
    // its host-name check (an IP is matched against IP SANs only).
    const result = await runMutual([
      ...['cert', 'issue', '--ca', join(dir, 'ca'), '--spiffe-id', web, '--out', out, '--dns', address],
    ]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(
      result.stderr,
      /^error\[MUTUAL_PKI_DNS_NAME_INVALID\]: ".*" is an IP address, not a DNS name: .*IP SANs only/m,
    );
    await assert.rejects(stat(out), { code: 'ENOENT' });
  }
});
