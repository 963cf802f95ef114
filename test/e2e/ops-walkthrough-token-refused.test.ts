// A sidecar's join token file gets emptied (or edited) under a running mesh. Its renewals fail
// ("identity service refused: no token was given"), `mutual up` writes tokens again only every 6
// hours, and the certificate expires first: every call to the service failed (502). `mutual check`
// said "the last renewal failed" and to read the logs, which say the same. Now it names the token
// file and the command that writes a good one with no restart; run as written, the sidecar renews.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { type MeshUp, repoRoot, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-ops-token-refused-'));
  await writeFile(
    join(dir, 'mesh.yaml'),
    [
      'trustDomain: cluster.local',
      'certificateLifetime: 30s',
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

interface Renewal {
  result?: string;
  error?: { code?: string } | null;
}

async function lastRenewal(adminUrl: string): Promise<Renewal | undefined> {
  const answer = await fetch(`${adminUrl}/identity`).catch(() => undefined);
  return answer?.ok ? ((await answer.json()) as { lastRenewal?: Renewal }).lastRenewal : undefined;
}

async function until(adminUrl: string, wanted: (renewal: Renewal | undefined) => boolean): Promise<void> {
  while (!wanted(await lastRenewal(adminUrl))) await new Promise((resolve) => setTimeout(resolve, 200));
}

test('a refused join token: check names the token file and the command, which fixes it live', {
  timeout: 180_000,
}, async () => {
  const stateDir = join(dir, 'state');
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as {
    services: { adminUrl: string }[];
  };
  const adminUrl = runtime.services[0]!.adminUrl;
  const tokenFile = join(stateDir, 'tokens', 'shop.token');
  await writeFile(tokenFile, '');
  await until(adminUrl, (renewal) => renewal?.error?.code === 'MUTUAL_IDENTITY_TOKEN_INVALID');

  const check = await runMutual(['check', '--state-dir', stateDir], { timeoutMs: 60_000 });
  const advice = new RegExp(
    `its join token, ${tokenFile.replaceAll('.', '\\.')}, is refused: .*write one now: \`(mutual identity token create --ns demo --sa shop [^\`]+)\``,
  ).exec(check.stdout);
  assert.ok(advice, check.stdout);

  // The command as printed, `mutual` being this repository's bin/mutual.js.
  const command = advice[1]!.replace(
    /^mutual /,
    `${process.execPath} ${join(repoRoot(), 'bin', 'mutual.js')} `,
  );
  await promisify(execFile)('/bin/sh', ['-c', command]);
  await until(adminUrl, (renewal) => renewal?.result === 'ok' && !renewal.error);
});
