// A mesh whose issuer is about to expire. Run under faketime two minutes before its issuer's end,
// `mutual up` printed "✓ CA reused (issuer valid until …)" and the identity service logged nothing;
// two minutes later every sidecar's certificate expired with the issuer, every request failed
// (502), and the sidecars' logs said only "cannot reach the identity service: certificate has
// expired". `up` now warns when the issuer has less than `mutual check`'s 60 days left, with the
// fix, and the identity service says it in its log (at start, then daily; hourly in the last
// day); following the fix, the identity service takes the new issuer live.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-ops-issuer-expiry-'));
  await writeFile(
    join(dir, 'mesh.yaml'),
    [
      'trustDomain: cluster.local',
      'services:',
      '  - name: shop',
      '    namespace: demo',
      `    command: [node, -e, "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')"]`,
      '    ports: [8080]',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await up?.stop();
  await runMutual(['down', '--state-dir', join(dir, 'state')]);
  await rm(dir, { recursive: true, force: true });
});

test('up warns of an issuer near its end and names the fix, which the identity service takes live', {
  timeout: 120_000,
}, async () => {
  const stateDir = join(dir, 'state');
  const caDir = join(stateDir, 'ca');
  const created = await runMutual([
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--out',
    caDir,
    '--issuer-lifetime',
    '2h',
  ]);
  assert.equal(created.code, 0, created.stderr);
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  const warning = /! the issuer expires in \d+h \d+m: .*`mutual ca issuer --ca (\S+) --out next`/.exec(
    up.output(),
  );
  assert.ok(warning, up.output());

  // The identity service, which runs for weeks after up's start, says it in its log too.
  const log = join(stateDir, 'logs', 'identity.log');
  assert.match(
    await readFile(log, 'utf8'),
    /issuer O=Mutual, CN=Mutual issuer cluster\.local \w+ expires in \d+h \d+m .*`mutual ca issuer --ca DIR --out next`.*issuer\.crt/,
  );

  const next = join(dir, 'next');
  const made = await runMutual(['ca', 'issuer', '--ca', caDir, '--out', next]);
  assert.equal(made.code, 0, made.stderr);
  await copyFile(join(next, 'issuer.key'), join(caDir, 'issuer.key'));
  await copyFile(join(next, 'issuer.crt'), join(caDir, 'issuer.crt'));
  while (!(await readFile(log, 'utf8')).includes('ca reload: issuer accepted'))
    await new Promise((resolve) => setTimeout(resolve, 100));
  const check = await runMutual(['check', '--state-dir', stateDir], { timeoutMs: 60_000 });
  assert.match(check.stdout, /√ issuer is valid for at least the warning period/, check.stdout);
});
