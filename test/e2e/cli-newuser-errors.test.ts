// Mistakes a new user makes in the first minutes, with the real binary: a directory where a file
// belongs and the other way round, a misspelled `identity` subcommand, a certificate piped in as
// to openssl or step, and the wrong file given to `policy check`. Each gets a short error in
// words (no EISDIR, no "unknown option '--ca'"), exit non-zero, and nothing written.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, repoRoot, runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-newuser-errors-'));
  await createCa(join(dir, 'ca'));
  const issued = await runMutual([
    ...['cert', 'issue', '--ca', join(dir, 'ca'), '--spiffe-id', 'spiffe://cluster.local/ns/default/sa/web'],
    ...['--out', join(dir, 'web')],
  ]);
  assert.equal(issued.code, 0, issued.stderr);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a directory given for a file, or a file for a directory: said in words, nothing written', async () => {
  const inspect = await runMutual(['cert', 'inspect', join(dir, 'ca')]);
  assert.equal(inspect.code, 1);
  assert.equal(
    inspect.stderr.split('\n')[0],
    `error[MUTUAL_IO_READ_FAILED]: cannot read certificate file ${join(dir, 'ca')}: it is a directory, not a file: give the path of a file in it`,
  );
  const verify = await runMutual([
    'cert',
    'verify',
    '--bundle',
    join(dir, 'ca'),
    '--cert',
    join(dir, 'web', 'cert.pem'),
  ]);
  assert.equal(verify.code, 1);
  assert.match(verify.stderr, /cannot read trust bundle \S+\/ca: it is a directory, not a file/);
  const issue = await runMutual([
    ...['cert', 'issue', '--ca', join(dir, 'ca', 'bundle.pem'), '--spiffe-id', 'spiffe://cluster.local/x'],
    ...['--out', join(dir, 'never')],
  ]);
  assert.equal(issue.code, 1);
  assert.equal(
    issue.stderr.split('\n')[0],
    `error[MUTUAL_IO_READ_FAILED]: cannot read issuer certificate ${join(dir, 'ca', 'bundle.pem', 'issuer.crt')}: ${join(dir, 'ca', 'bundle.pem')} is a file, not a directory`,
  );
  assert.equal(existsSync(join(dir, 'never')), false, 'nothing written for a failed issue');
  const up = await runMutual(['up', '-f', join(dir, 'ca'), '--state-dir', join(dir, 'no-mesh')]);
  assert.equal(up.code, 1);
  assert.match(up.stderr, /cannot read mesh file \S+: it is a directory, not a file/);
  assert.equal(existsSync(join(dir, 'no-mesh')), false, 'no state directory for a mesh that never started');
  for (const run of [inspect, verify, issue, up]) {
    assert.doesNotMatch(run.stderr, /EISDIR|ENOTDIR|illegal operation|\n\s+at /);
  }
});

test('a misspelled identity subcommand is named as one, not taken for a service name', async () => {
  for (const [args, meant] of [
    [['identity', 'srve', '--ca', join(dir, 'ca')], 'serve'],
    [['identity', 'tokne', 'create', '--ns', 'default', '--sa', 'web'], 'token'],
    [['identity', 'shwo', 'web'], 'show'],
  ] as const) {
    const run = await runMutual(args);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(
      run.stderr.split('\n')[0],
      `error[MUTUAL_CLI_USAGE]: unknown command 'identity ${args[1]}': did you mean \`mutual identity ${meant}\`? (for the certificate of a mesh service named ${args[1]}: \`mutual identity show ${args[1]}\`)`,
    );
  }
  const help = await runMutual(['identity', 'help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: mutual identity /);
  // A real service name still goes to `identity show` (here: no mesh runs).
  const service = await runMutual(['identity', 'web', '--state-dir', join(dir, 'no-mesh')]);
  assert.equal(service.code, 1);
  assert.match(service.stderr, /^error\[MUTUAL_MESH_NOT_RUNNING\]/);
});

test('cert inspect - reads a PEM chain or a DER certificate from stdin, as openssl x509 does', async () => {
  const pem = await readFile(join(dir, 'web', 'cert.pem'));
  const fromPem = await runMutual(['cert', 'inspect', '-'], { input: pem });
  assert.equal(fromPem.code, 0, fromPem.stderr);
  assert.match(
    fromPem.stdout,
    /^Certificate 1 of 2 \(leaf\)\n {2}subject {8}\(empty\)\n {2}SPIFFE ID {6}spiffe:\/\/cluster\.local\/ns\/default\/sa\/web\n/,
  );
  const der = Buffer.from(
    pem
      .toString()
      .split('-----END CERTIFICATE-----')[0]!
      .replace(/-----BEGIN CERTIFICATE-----|\s/g, ''),
    'base64',
  );
  const fromDer = await runMutual(['cert', 'inspect', '-', '-o', 'json'], { input: der });
  assert.equal(fromDer.code, 0, fromDer.stderr);
  assert.equal(JSON.parse(fromDer.stdout)[0].spiffeId, 'spiffe://cluster.local/ns/default/sa/web');
  const empty = await runMutual(['cert', 'inspect', '-'], { input: Buffer.alloc(0) });
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /^error\[MUTUAL_PKI_PEM_MALFORMED\]: <stdin> is empty/);
});

test('policy check of a file that is not YAML at all: ten errors and a count, not one per line', async () => {
  const notes = Array.from({ length: 40 }, () => '`mutual up` first\nkey: value: other\n').join('');
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'notes.yaml'), notes);
  const check = await runMutual(['policy', 'check', join(dir, 'policies', 'notes.yaml')], { cwd: dir });
  assert.equal(check.code, 1);
  const errorLines = check.stdout
    .split('\n')
    .filter((line) => line.includes('error[MUTUAL_POLICY_YAML_INVALID]'));
  assert.equal(errorLines.length, 10, check.stdout);
  const total = Number(/: (\d+) errors, 0 warnings\n$/.exec(check.stdout)?.[1]);
  assert.ok(total > 20, check.stdout);
  assert.match(
    check.stdout,
    new RegExp(
      `policies/notes\\.yaml: … and ${total - 10} more YAML errors \\(is it a policy file\\? -o json lists them all\\)\\n`,
    ),
  );
  const json = await runMutual(['policy', 'check', join(dir, 'policies'), '-o', 'json']);
  assert.equal(JSON.parse(json.stdout).errors.length, total);
  const explain = await runMutual([
    ...['policy', 'explain', '--policy-dir', join(dir, 'policies'), '--to', 'demo/web'],
    ...['--port', '8080', '--plaintext'],
  ]);
  assert.equal(explain.code, 1);
  assert.ok(explain.stderr.split('\n').length < 30, explain.stderr);
  assert.match(explain.stderr, new RegExp(`\\n… and ${total - 20} more \\(is it a policy file\\?`));
});

test('identity token create into a directory without a key says that it made one and which service accepts the token', async () => {
  const stateDir = join(dir, 'elsewhere');
  const createToken = () =>
    runMutual(['identity', 'token', 'create', '--ns', 'default', '--sa', 'web', '--state-dir', stateDir]);
  const first = await createToken();
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  assert.equal(
    first.stderr,
    `note: ${stateDir} held no join-token key, so a new one was made (${join(stateDir, 'identity', 'join-token.key')}): only an identity service (or \`mutual up\`) started with --state-dir ${stateDir} accepts this token\n`,
  );
  const second = await createToken();
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stderr, '');
});

test('check --proxy with port 0 is a usage error, not a check of port 80', async () => {
  const run = await runMutual(['check', '--proxy', '127.0.0.1:0']);
  assert.equal(run.code, 2, run.stdout);
  assert.equal(
    run.stderr.split('\n')[0],
    `error[MUTUAL_CLI_USAGE]: --proxy "127.0.0.1:0" is not a sidecar's admin address: give what its --admin-listen was, e.g. 127.0.0.1:14191 or http://127.0.0.1:14191`,
  );
});

test('dashboard from a directory where no mesh runs says so, then stops on Ctrl-C with exit 0', async () => {
  const stateDir = join(dir, 'no-mesh-yet');
  const child = spawn(
    process.execPath,
    [join(repoRoot(), 'bin', 'mutual.js'), 'dashboard', '--listen', '127.0.0.1:0', '--state-dir', stateDir],
    { env: { ...process.env, NO_COLOR: '1' } },
  );
  let output = '';
  const exited = once(child, 'exit');
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('starts one')) resolve();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', () => resolve());
  });
  child.kill('SIGINT');
  const [code] = await exited;
  assert.equal(code, 0, output);
  assert.match(
    output,
    new RegExp(
      `^Mutual dashboard for ${stateDir}: http://127\\.0\\.0\\.1:\\d+/\\n\\(Ctrl-C stops it\\)\\nNo mesh is running from ${stateDir} yet: the page shows it once \`mutual up -f mesh\\.yaml --state-dir ${stateDir}\` starts one \\(or pass the --state-dir a running mesh was started with\\)\\.\\nSIGINT: stopping the dashboard\\n$`,
    ),
  );
});

test('destination serve: no credentials names only its own flags; a missing or directory --file is said in words', async () => {
  const bare = await runMutual(['destination', 'serve']);
  assert.equal(bare.code, 2);
  assert.equal(
    bare.stderr.split('\n')[0],
    'error[MUTUAL_CLI_USAGE]: no credentials: give --identity-url, --token-file and --identity-bundle (a certificate from `mutual identity serve`), or --cert, --key and --bundle (static files, e.g. from `mutual cert issue`)',
  );
  const web = join(dir, 'web');
  for (const [file, reason] of [
    [join(dir, 'nope.yaml'), 'it does not exist'],
    [join(dir, 'ca'), 'it is a directory, not a file: give the path of a file in it'],
  ] as const) {
    const run = await runMutual([
      ...[
        'destination',
        'serve',
        '--file',
        file,
        '--cert',
        join(web, 'cert.pem'),
        '--key',
        join(web, 'key.pem'),
      ],
      ...['--bundle', join(web, 'bundle.pem'), '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ]);
    assert.equal(run.code, 1, run.stdout);
    assert.equal(
      run.stderr.split('\n')[0],
      `error[MUTUAL_IO_READ_FAILED]: cannot read the destination table ${file}: ${reason}`,
    );
  }
});
