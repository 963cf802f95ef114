// `mutual policy check` and `mutual policy explain`, run as the real binary over the YAML files in
// test/policy/ (a valid mesh and a file full of traps and one error).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, runMutual } from './run-mutual.ts';

const MESH = join(repoRoot(), 'test', 'policy', 'mesh');
const BROKEN = join(repoRoot(), 'test', 'policy', 'broken');

test('policy check: a valid directory passes with no warnings', async () => {
  const run = await runMutual([
    'policy',
    'check',
    MESH,
    '--workload',
    'demo/web',
    '--workload',
    'demo:app=api',
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /2 files, 5 valid policies: 0 errors, 0 warnings/);
});

test('policy check: errors with file:line:column and the fix, traps as warnings, exit 1', async () => {
  const run = await runMutual(['policy', 'check', BROKEN]);
  assert.equal(run.code, 1);
  assert.match(
    run.stdout,
    /policies\.yaml:22:9: error\[MUTUAL_POLICY_INVALID\] \(demo\/api-from-web\): .*unknown field "principal" .*\n {2}hint: Did you mean "principals"\?/,
  );
  assert.match(
    run.stdout,
    /policies\.yaml:8:5: warning\[root-namespace-selector\] \(mutual-system\/web-strict\)/,
  );
  assert.match(run.stdout, /policies\.yaml:29:7: warning\[allow-nothing\] \(demo\/deny-all\)/);
  assert.match(run.stdout, /1 file, 2 valid policies: 1 error, 2 warnings/);
});

test('policy check: each misspelt field is its own error, with the field meant in the message', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-typos-'));
  try {
    await writeFile(
      join(dir, 'typos.yaml'),
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: typos, namespace: demo }
spec:
  rules:
    - from:
        - source: { principal: [cluster.local/ns/demo/sa/web], namespace: [demo] }
      to:
        - operation: { method: [GET], path: [/x], port: ["80"] }
`,
    );
    const run = await runMutual(['policy', 'check', dir]);
    assert.equal(run.code, 1, run.stderr);
    for (const [field, meant] of [
      ['principal', 'principals'],
      ['namespace', 'namespaces'],
      ['method', 'methods'],
      ['path', 'paths'],
      ['port', 'ports'],
    ]) {
      const line = new RegExp(
        `typos\\.yaml:\\d+:\\d+: error\\[MUTUAL_POLICY_INVALID\\].*\\.${field}: unknown field "${field}" \\(did you mean "${meant}"\\?`,
      );
      assert.match(run.stdout, line, run.stdout);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('policy check -o json: the same findings as data', async () => {
  const run = await runMutual(['policy', 'check', BROKEN, MESH, '--workload', 'demo/web', '-o', 'json']);
  assert.equal(run.code, 1);
  const report = JSON.parse(run.stdout);
  assert.equal(report.isValid, false);
  assert.equal(report.files.length, 3);
  assert.deepEqual(
    report.errors.map((e: any) => [e.code, e.line, e.column]),
    [['MUTUAL_POLICY_INVALID', 22, 9]],
  );
  assert.deepEqual(report.warnings.map((w: any) => w.code).sort(), [
    'allow-nothing',
    'root-namespace-selector',
    'selector-matches-nothing',
  ]);
});

test('policy check: a missing path is an error naming it', async () => {
  const run = await runMutual(['policy', 'check', join(BROKEN, 'nope.yaml')]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /error\[MUTUAL_POLICY_NOT_FOUND\]: .*nope\.yaml/);
});

test('policy explain: allowed by an ALLOW rule, over HTTP', async () => {
  const run = await runMutual([
    ...['policy', 'explain', '--policy-dir', MESH, '--to', 'demo/api', '--port', '8080'],
    ...['--from', 'spiffe://cluster.local/ns/demo/sa/web', '--method', 'GET', '--path', '/api/users?page=2'],
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /mTLS mode +STRICT \(set by demo\/default, namespace level\)/);
  assert.match(run.stdout, /decision +ALLOW by demo\/api-from-web rule 0/);
});

test('policy explain: the same client over TCP is denied (the ALLOW rule needs HTTP)', async () => {
  const run = await runMutual([
    ...[
      'policy',
      'explain',
      '--policy-dir',
      MESH,
      '--namespace',
      'demo',
      '--label',
      'app=api',
      '--port',
      '8080',
    ],
    ...['--from', 'cluster.local/ns/demo/sa/web', '-o', 'json'],
  ]);
  assert.equal(run.code, 0, run.stderr);
  const view = JSON.parse(run.stdout);
  assert.deepEqual(view.decision, { allowed: false, policy: 'demo/api-from-web', reason: 'no-allow-match' });
  assert.equal(view.request, null);
});

test('policy explain: the path is normalised as the sidecar normalises it; a malformed one is refused', async () => {
  const climbed = await runMutual([
    ...['policy', 'explain', '--policy-dir', MESH, '--to', 'demo/api', '--port', '8080'],
    ...['--from', 'cluster.local/ns/demo/sa/web', '--path', '/api/../admin?x=1'],
  ]);
  assert.equal(climbed.code, 0, climbed.stderr);
  assert.match(climbed.stdout, /traffic +HTTP GET \/admin\?x=1 \(normalised from \/api\/\.\.\/admin\?x=1\)/);
  assert.match(
    climbed.stdout,
    /decision +DENY: no rule of the ALLOW policies \(demo\/api-from-web\) matched/,
  );
  const nul = await runMutual([
    ...['policy', 'explain', '--policy-dir', MESH, '--to', 'demo/api', '--port', '8080'],
    ...['--from', 'cluster.local/ns/demo/sa/web', '--path', '/api/%00'],
  ]);
  assert.equal(nul.code, 2, nul.stdout);
  assert.match(
    nul.stderr,
    /--path \/api\/%00: the path "\/api\/%00" contains %00 .*answers such a request 400/,
  );
});

test('policy explain: a mesh-wide DENY names its policy and rule', async () => {
  const run = await runMutual([
    ...['policy', 'explain', '--policy-dir', MESH, '--to', 'demo/api', '--port', '8080'],
    ...['--from', 'cluster.local/ns/demo/sa/attacker', '--path', '/api/x'],
  ]);
  assert.match(run.stdout, /decision +DENY by mutual-system\/no-attacker rule 0/);
});

test('policy explain: plaintext to STRICT is refused; the PERMISSIVE health port lets it in', async () => {
  const strict = await runMutual([
    'policy',
    'explain',
    '--policy-dir',
    MESH,
    '--to',
    'demo/web',
    '--port',
    '8080',
    '--plaintext',
  ]);
  assert.match(strict.stdout, /decision +REFUSED: plaintext to a STRICT port/);
  const health = await runMutual([
    ...['policy', 'explain', '--policy-dir', MESH, '--to', 'demo/web', '--port', '9000', '--plaintext'],
    ...['--path', '/healthz'],
  ]);
  assert.match(health.stdout, /mTLS mode +PERMISSIVE \(set by demo\/web-health, port level\)/);
  assert.match(health.stdout, /decision +ALLOW: no ALLOW policy applies/);
});

test('policy explain: usage errors and a broken policy directory', async () => {
  const both = await runMutual([
    'policy',
    'explain',
    '--policy-dir',
    MESH,
    '--to',
    'demo/web',
    '--port',
    '80',
  ]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /exactly one of --from PRINCIPAL .* or --plaintext/);
  const broken = await runMutual([
    'policy',
    'explain',
    '--policy-dir',
    BROKEN,
    '--to',
    'demo/web',
    '--port',
    '80',
    '--plaintext',
  ]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /error\[MUTUAL_POLICY_INVALID\]: .*policies\.yaml:22:9/);
});

test('policy explain: a directory written just now is read as it is', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-cli-'));
  try {
    await writeFile(
      join(dir, 'deny.yaml'),
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-all\n  namespace: demo\nspec: {}\n',
    );
    const run = await runMutual([
      'policy',
      'explain',
      '--policy-dir',
      dir,
      '--to',
      'demo/web',
      '--port',
      '80',
      '--plaintext',
    ]);
    assert.match(run.stdout, /decision +DENY: no rule of the ALLOW policies \(demo\/deny-all\) matched/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('policy explain: a directory with no policy files is an error, not an answer', async () => {
  // A mistyped or empty --policy-dir must not read as "no policies: PERMISSIVE, ALLOW".
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-cli-'));
  try {
    await writeFile(join(dir, 'README.md'), 'policies go here\n');
    const run = await runMutual([
      'policy',
      'explain',
      '--policy-dir',
      dir,
      '--to',
      'demo/web',
      '--port',
      '80',
      '--plaintext',
    ]);
    assert.equal(run.code, 1, run.stdout);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /error\[MUTUAL_POLICY_NOT_FOUND\]: no \.yaml or \.yml files in \S+\n {2}hint: /);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('policy explain: a --from that no certificate can carry is refused, naming the broken rule', async () => {
  // Every mTLS peer's principal comes from a valid SPIFFE ID; explaining an impossible one
  // would answer a question the sidecar never faces.
  const cases: Array<[string, RegExp]> = [
    ['spiffe://Cluster.local/ns/demo/sa/web', /lower case/],
    ['cluster.local/ns/../sa/web', /"\." or "\.\." segment/],
    ['cluster.local/ns/demo/sa/web?x=1', /query/],
    ['cluster.local:8443/ns/demo/sa/web', /port/],
  ];
  for (const [from, reason] of cases) {
    const run = await runMutual([
      'policy',
      'explain',
      '--policy-dir',
      MESH,
      '--to',
      'demo/api',
      '--port',
      '8080',
      '--from',
      from,
    ]);
    assert.equal(run.code, 1, `${from}: ${run.stdout}`);
    assert.equal(run.stdout, '', from);
    assert.match(run.stderr, /^error\[MUTUAL_SPIFFE_ID_INVALID\]: --from: /, from);
    assert.match(run.stderr, reason, from);
    assert.match(run.stderr, /\n {2}hint: /, from);
  }
});

test('policy explain: --source-ip must be an IP address, --header NAME=VALUE', async () => {
  const base = [
    'policy',
    'explain',
    '--policy-dir',
    MESH,
    '--to',
    'demo/api',
    '--port',
    '8080',
    '--plaintext',
  ];
  const badIp = await runMutual([...base, '--source-ip', '999.1.1.1']);
  assert.equal(badIp.code, 2, badIp.stdout);
  assert.match(
    badIp.stderr,
    /error\[MUTUAL_CLI_USAGE\]: --source-ip 999\.1\.1\.1: give an IPv4 or IPv6 address/,
  );
  const badHeader = await runMutual([...base, '--header', 'x-token']);
  assert.equal(badHeader.code, 2, badHeader.stdout);
  assert.match(badHeader.stderr, /error\[MUTUAL_CLI_USAGE\]: --header x-token: write a header as name=value/);
  const v6 = await runMutual([...base, '--source-ip', '::1']);
  assert.equal(v6.code, 0, v6.stderr);
});

test('policy explain: a --header given twice is a header sent twice, matched as Istio matches it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-policy-cli-'));
  try {
    await writeFile(
      join(dir, 'deny.yaml'),
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-evil\n  namespace: demo\nspec:\n  action: DENY\n  rules:\n  - when:\n    - key: request.headers[x-user]\n      values: ["evil"]\n',
    );
    const explain = (...headers: string[]) =>
      runMutual([
        ...['policy', 'explain', '--policy-dir', dir, '--to', 'demo/web', '--port', '80', '--plaintext'],
        ...headers.flatMap((header) => ['--header', header]),
      ]);
    assert.match((await explain('x-user=good')).stdout, /decision +ALLOW/);
    // The first value was dropped: the last --header won, so "evil" sent first was allowed.
    assert.match((await explain('X-User=evil', 'x-user=good')).stdout, /decision +DENY.*demo\/deny-evil/);
    assert.match((await explain('x-user=good,evil')).stdout, /decision +DENY.*demo\/deny-evil/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
