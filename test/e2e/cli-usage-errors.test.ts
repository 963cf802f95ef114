// Usage a hostile new user tries, with the real binary: an option given twice, a --state-dir that
// is a file. Each is one error naming the input and the fix, with nothing written.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-usage-errors-'));
  await createCa(join(dir, 'ca'));
  await writeFile(join(dir, 'a-file'), 'not a directory\n');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('an option that takes one value, given twice with different values, is a usage error and nothing is written (commander kept the last)', async () => {
  const cases: Array<[string[], string]> = [
    [
      [
        'ca',
        'create',
        '--trust-domain',
        'a.local',
        '--trust-domain',
        'b.local',
        '--out',
        join(dir, 'ca-twice'),
      ],
      '--trust-domain was given 2 times ("a.local", "b.local") and takes one value: give it once',
    ],
    [
      ['ca', 'create', '--trust-domain=a.local', '--out', join(dir, 'ca-x'), '--out', join(dir, 'ca-y')],
      `--out was given 2 times ("${join(dir, 'ca-x')}", "${join(dir, 'ca-y')}") and takes one value: give it once`,
    ],
    [
      [
        'cert',
        'issue',
        '--ca',
        join(dir, 'ca'),
        '--spiffe-id',
        'spiffe://cluster.local/a',
        '--spiffe-id',
        'spiffe://cluster.local/b',
        '--out',
        join(dir, 'svid-twice'),
      ],
      '--spiffe-id was given 2 times',
    ],
    [
      ['edges', '-o', 'json', '--output', 'text', '--state-dir', join(dir, 'none')],
      '--output was given 2 times ("json", "text")',
    ],
  ];
  for (const [args, message] of cases) {
    const run = await runMutual(args);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
    assert.equal(run.stdout, '');
    assert.ok(run.stderr.startsWith(`error[MUTUAL_CLI_USAGE]: ${message}`), run.stderr);
  }
  for (const out of ['ca-twice', 'ca-x', 'ca-y', 'svid-twice'])
    assert.equal(existsSync(join(dir, out)), false, out);
});

test('the same value twice, and options documented as repeatable, are fine', async () => {
  const same = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'a.local',
    '--trust-domain',
    'a.local',
    '--out',
    join(dir, 'ca-same'),
  ]);
  assert.equal(same.code, 0, same.stderr);
  const dns = await runMutual([
    'cert',
    'issue',
    '--ca',
    join(dir, 'ca'),
    '--spiffe-id',
    'spiffe://cluster.local/web',
    '--dns',
    'web.local',
    '--dns',
    'www.local',
    '--out',
    join(dir, 'svid-dns'),
    '-o',
    'json',
  ]);
  assert.equal(dns.code, 0, dns.stderr);
  const inspect = await runMutual(['cert', 'inspect', join(dir, 'svid-dns', 'cert.pem')]);
  assert.match(inspect.stdout, /DNS:web\.local, DNS:www\.local/);
});

test('a --state-dir that is a file: each mesh command says so and what to pass, instead of ENOTDIR or "no logs, start a mesh"', async () => {
  const file = join(dir, 'a-file');
  const expected = `error[MUTUAL_MESH_NOT_RUNNING]: --state-dir ${file} is not a directory (a file is in the way), so no mesh runs from it; pass the directory \`mutual up\` was started with (default .mutual)`;
  for (const args of [
    ['down'],
    ['logs', 'web'],
    ['logs', 'web', '--proxy', '--follow'],
    ['edges'],
    ['check'],
    ['identity', 'show', 'web'],
    ['dashboard', '--listen', '127.0.0.1:0'],
  ]) {
    const run = await runMutual([...args, '--state-dir', file], { timeoutMs: 20_000 });
    assert.equal(run.code, 1, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
    assert.equal(run.stderr.split('\n')[0], expected, args.join(' '));
  }
  const through = await runMutual(['edges', '--state-dir', join(file, 'state')]);
  assert.equal(through.code, 1);
  assert.match(through.stderr, /--state-dir \S+a-file\/state is not a directory \(a file is in the way\)/);
});

test('cert verify --at past the years a certificate can hold is a usage error, not "the certificate chain could not be checked: RangeError"', async () => {
  const issued = await runMutual([
    'cert',
    'issue',
    '--ca',
    join(dir, 'ca'),
    '--spiffe-id',
    'spiffe://cluster.local/at',
    '--out',
    join(dir, 'svid-at'),
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  const verify = [
    'cert',
    'verify',
    '--cert',
    join(dir, 'svid-at', 'cert.pem'),
    '--bundle',
    join(dir, 'ca', 'bundle.pem'),
  ];
  for (const at of ['-99999999999d', '+99999y']) {
    const run = await runMutual([...verify, '--at', at]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.ok(
      run.stderr.startsWith(
        `error[MUTUAL_CLI_USAGE]: --at "${at}" is not a time between the years 0 and 9999: use ISO 8601`,
      ),
      run.stderr,
    );
  }
  const later = await runMutual([...verify, '--at', '+7000y']);
  assert.equal(later.code, 1);
  assert.match(later.stderr, /^invalid: MUTUAL_PKI_CERT_EXPIRED/);
});

test('up --timeout under a second or over a day is refused before anything starts', async () => {
  await writeFile(
    join(dir, 'mesh.yaml'),
    'services:\n  - name: web\n    command: [node, -e, "0"]\n    ports: [8080]\n',
  );
  for (const [timeout, problem] of [
    ['0s', 'is too short'],
    ['1ms', 'is too short'],
    ['99999d', 'is longer than the maximum of 24h'],
  ]) {
    const run = await runMutual([
      'up',
      '-f',
      join(dir, 'mesh.yaml'),
      '--state-dir',
      join(dir, 'state-timeout'),
      '--timeout',
      timeout!,
    ]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.equal(run.stdout, '');
    assert.ok(
      run.stderr.startsWith(`error[MUTUAL_CLI_USAGE]: --timeout "${timeout}" ${problem}`),
      run.stderr,
    );
  }
  assert.equal(existsSync(join(dir, 'state-timeout')), false);
});
