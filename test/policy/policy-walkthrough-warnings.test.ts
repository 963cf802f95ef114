// `mutual policy check` warns about an ALLOW rule whose notPrincipals / notNamespaces /
// notServiceAccounts would let plaintext in (ISTIO-SECURITY-2021-004), and says to add
// `principals: ["*"]` or a `when` on source.principal. Before, the warning stayed after the user
// did exactly that (a plaintext peer has no principal, so such a rule never matches it, as
// `mutual policy explain --plaintext` shows), and `mutual check` kept reporting it as a trap.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runMutual } from '../e2e/run-mutual.ts';

let dir: string;

function allow(name: string, rule: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: shop }
spec:
  selector: { matchLabels: { app: ${name} } }
  rules:
${rule}`;
}

const POLICIES: Record<string, { rule: string; isOpenToPlaintext: boolean }> = {
  // The trap itself: warned, and plaintext is allowed.
  'not-principals-only': {
    rule: '    - from: [{ source: { notPrincipals: ["cluster.local/ns/shop/sa/bad"] } }]\n',
    isOpenToPlaintext: true,
  },
  'not-service-accounts-only': {
    rule: '    - from: [{ source: { notServiceAccounts: ["bad"] } }]\n',
    isOpenToPlaintext: true,
  },
  // The hint's fixes, and their equivalents: no warning, and plaintext is denied.
  'with-principals-star': {
    rule: '    - from: [{ source: { principals: ["*"], notPrincipals: ["cluster.local/ns/shop/sa/bad"] } }]\n',
    isOpenToPlaintext: false,
  },
  'with-namespaces': {
    rule: '    - from: [{ source: { namespaces: ["shop"], notPrincipals: ["cluster.local/ns/shop/sa/bad"] } }]\n',
    isOpenToPlaintext: false,
  },
  'with-service-accounts': {
    rule: '    - from: [{ source: { serviceAccounts: ["web", "api"], notServiceAccounts: ["api"] } }]\n',
    isOpenToPlaintext: false,
  },
  'with-when-principal': {
    rule: '    - from: [{ source: { notServiceAccounts: ["bad"] } }]\n      when: [{ key: source.principal, values: ["*"] }]\n',
    isOpenToPlaintext: false,
  },
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-warnings-'));
  await writeFile(
    join(dir, 'policies.yaml'),
    Object.entries(POLICIES)
      .map(([name, { rule }]) => allow(name, rule))
      .join('---\n'),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the plaintext warning names exactly the ALLOW rules that let plaintext in', async () => {
  const check = await runMutual(['policy', 'check', dir]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const warned = [
    ...(check.stdout + check.stderr).matchAll(/warning\[allow-negative-mtls-field\] \(shop\/([a-z-]+)\)/g),
  ].map((match) => match[1]);
  const expected = Object.entries(POLICIES)
    .filter(([, { isOpenToPlaintext }]) => isOpenToPlaintext)
    .map(([name]) => name);
  assert.deepEqual(warned.sort(), expected.sort());

  // What the sidecar would decide for a plaintext request agrees with the warnings.
  for (const [name, { isOpenToPlaintext }] of Object.entries(POLICIES)) {
    const explain = await runMutual([
      ...['policy', 'explain', '--policy-dir', dir, '--to', `shop/${name}`],
      ...['--port', '8080', '--plaintext', '--path', '/'],
    ]);
    assert.match(
      explain.stdout,
      isOpenToPlaintext ? /decision +ALLOW/ : /decision +DENY/,
      `${name}: ${explain.stdout}`,
    );
  }
});
