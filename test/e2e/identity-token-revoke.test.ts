// `mutual identity token revoke` against a running identity service (a real process): a leaked join
// token stops working without a restart and without ending every other token, by the token itself,
// by the tokenId the audit log names, or for every token of one identity minted before the command.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import { createIdentityClient } from '../../src/workload/index.ts';
import {
  createCa,
  type IdentityServiceProcess,
  mintJoinToken,
  runMutual,
  startIdentityService,
} from './run-mutual.ts';

let dir: string;
let stateDir: string;
let service: IdentityServiceProcess;
let client: ReturnType<typeof createIdentityClient>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-token-revoke-'));
  stateDir = join(dir, 'state');
  await createCa(join(dir, 'ca'));
  const bundlePem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  // A high failure burst: this file sends several revoked tokens from one address on purpose.
  service = await startIdentityService(join(dir, 'ca'), stateDir, ['--auth-failure-burst', '1000']);
  client = createIdentityClient({
    url: service.apiUrl.href,
    serverId: 'spiffe://cluster.local/ns/mutual-system/sa/identity',
    trustBundlePem: () => bundlePem,
  });
});

after(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Certify with `token` for ns/sa: the SPIFFE ID issued, or the refusal's code and message. */
async function certify(token: string, ns: string, sa: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spiffeId = `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
  try {
    return (await client.certify(token, await createCsr({ privateKey, spiffeId }))).spiffeId;
  } catch (error) {
    return `${(error as { code?: string }).code}: ${(error as Error).message}`;
  }
}

function revoke(...args: string[]) {
  return runMutual(['identity', 'token', 'revoke', '--state-dir', stateDir, ...args]);
}

async function auditLines(): Promise<Array<Record<string, string>>> {
  const text = await readFile(join(stateDir, 'identity', 'audit.log'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

test('a token revoked by its file is refused at once; another token for the same identity still works', async () => {
  const leaked = await mintJoinToken(stateDir, 'demo', 'web');
  const other = await mintJoinToken(stateDir, 'demo', 'web');
  assert.equal(await certify(leaked, 'demo', 'web'), 'spiffe://cluster.local/ns/demo/sa/web');
  const file = join(dir, 'leaked.token');
  await writeFile(file, `${leaked}\n`);
  const revoked = await revoke('--token-file', file, '--reason', 'found in a backup');
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /revoked token [0-9a-f]{16} for demo\/web, valid until /);
  const refused = await certify(leaked, 'demo', 'web');
  assert.match(
    refused,
    /^MUTUAL_IDENTITY_TOKEN_INVALID: .*token [0-9a-f]{16} was revoked .*found in a backup/,
  );
  assert.equal(await certify(other, 'demo', 'web'), 'spiffe://cluster.local/ns/demo/sa/web');
  const audit = await auditLines();
  assert.ok(
    audit.some((entry) => entry.result === 'refused' && /was revoked/.test(entry.message ?? '')),
    'the refusal is audited with its reason',
  );
});

test('a token revoked by the tokenId of its audit line is refused', async () => {
  const token = await mintJoinToken(stateDir, 'demo', 'emoji');
  assert.equal(await certify(token, 'demo', 'emoji'), 'spiffe://cluster.local/ns/demo/sa/emoji');
  const issued = (await auditLines()).filter(
    (entry) => entry.result === 'issued' && entry.identity?.endsWith('/ns/demo/sa/emoji'),
  );
  assert.equal(issued.length, 1);
  const revoked = await revoke('--id', issued[0]!.tokenId!);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(await certify(token, 'demo', 'emoji'), /^MUTUAL_IDENTITY_TOKEN_INVALID: .*was revoked/);
});

test('revoking an identity refuses every token minted before the command, and none minted after it', async () => {
  const first = await mintJoinToken(stateDir, 'demo', 'voting');
  const second = await mintJoinToken(stateDir, 'demo', 'voting');
  const bystander = await mintJoinToken(stateDir, 'demo', 'vote-bot');
  const revoked = await revoke('--ns', 'demo', '--sa', 'voting');
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /revoked every join token for demo\/voting minted before /);
  const after = await mintJoinToken(stateDir, 'demo', 'voting');
  assert.match(
    await certify(first, 'demo', 'voting'),
    /every token for demo\/voting minted before .* was revoked/,
  );
  assert.match(await certify(second, 'demo', 'voting'), /was revoked/);
  assert.equal(await certify(after, 'demo', 'voting'), 'spiffe://cluster.local/ns/demo/sa/voting');
  assert.equal(await certify(bystander, 'demo', 'vote-bot'), 'spiffe://cluster.local/ns/demo/sa/vote-bot');
});

test('a line that is not a revocation, added while the service runs, un-revokes nothing', async () => {
  const token = await mintJoinToken(stateDir, 'demo', 'db');
  const file = join(dir, 'db.token');
  await writeFile(file, token);
  assert.equal((await revoke('--token-file', file)).code, 0);
  await appendFile(join(stateDir, 'identity', 'revoked-tokens.jsonl'), '{"tokenId": "nope"}\n');
  assert.match(await certify(token, 'demo', 'db'), /was revoked/);
  assert.match(
    service.output(),
    /MUTUAL_IDENTITY_REVOCATIONS_INVALID.*revoked-tokens\.jsonl:\d+: tokenId "nope"/,
  );
});

test('revoke refuses what it cannot act on, and records nothing then', async () => {
  const revocations = join(stateDir, 'identity', 'revoked-tokens.jsonl');
  const before = await readFile(revocations, 'utf8').catch(() => '');
  const none = await revoke();
  assert.equal(none.code, 2);
  assert.match(none.stderr, /exactly one of --token-file FILE, --id TOKEN_ID, or --ns NS --sa SA/);
  const nsOnly = await revoke('--ns', 'demo');
  assert.equal(nsOnly.code, 2);
  const badId = await revoke('--id', 'not-hex');
  assert.equal(badId.code, 2);
  assert.match(badId.stderr, /is not a token ID/);
  const badSa = await revoke('--ns', 'demo', '--sa', 'demo/web');
  assert.equal(badSa.code, 2);
  assert.match(badSa.stderr, /cannot be part of a SPIFFE ID/);
  // A token from another identity service's key: revoking it here would change nothing.
  const elsewhere = join(dir, 'elsewhere');
  const foreign = join(dir, 'foreign.token');
  await writeFile(foreign, await mintJoinToken(elsewhere, 'demo', 'web'));
  const wrongKey = await revoke('--token-file', foreign);
  assert.notEqual(wrongKey.code, 0);
  assert.match(
    wrongKey.stderr,
    /MUTUAL_IDENTITY_TOKEN_INVALID.*not signed with this state directory's join-token key/,
  );
  const garbage = join(dir, 'garbage.token');
  await writeFile(garbage, 'not a token at all');
  assert.match((await revoke('--token-file', garbage)).stderr, /not a join token/);
  assert.equal(await readFile(revocations, 'utf8').catch(() => ''), before);
});

test('an identity service does not start on a revocations file it cannot read as one', async () => {
  const state = join(dir, 'broken-state');
  await mintJoinToken(state, 'demo', 'web');
  await writeFile(
    join(state, 'identity', 'revoked-tokens.jsonl'),
    'garbage\n{"tokenId":"0123456789abcdef"}\n',
  );
  await assert.rejects(
    startIdentityService(join(dir, 'ca'), state),
    /MUTUAL_IDENTITY_REVOCATIONS_INVALID.*revoked-tokens\.jsonl:1: not a JSON object/,
  );
});
