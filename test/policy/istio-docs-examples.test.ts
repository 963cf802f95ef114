// Istio's own documented PeerAuthentication and AuthorizationPolicy examples, pasted unchanged
// (test/policy/fixtures/istio-docs, each with its istio.io source and what Istio does with it):
// `mutual policy check` accepts each one Istio enforces and refuses, naming the field, each one
// it cannot enforce; `mutual policy explain` answers representative requests as Istio's docs
// say Istio does; and the ones that matter most run through real sidecars.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/index.ts';
import { systemClock } from '../../src/clock.ts';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

const FIXTURES = join(repoRoot(), 'test', 'policy', 'fixtures', 'istio-docs');

/** A fixture as `kubectl apply` would store it: `# kubectl -n NS` fills in metadata.namespace. */
async function fixture(name: string): Promise<string> {
  const text = await readFile(join(FIXTURES, `${name}.yaml`), 'utf8');
  const namespace = /^# kubectl -n (\S+)/m.exec(text)?.[1];
  return namespace === undefined
    ? text
    : text.replace(/^metadata:\n/gm, `metadata:\n  namespace: ${namespace}\n`);
}

let scratch: string;
let directories = 0;

/** A policy directory holding these fixtures, one file each. */
async function policyDir(names: readonly string[]): Promise<string> {
  const dir = join(scratch, `set-${directories++}`);
  await mkdir(dir);
  for (const name of names) await writeFile(join(dir, `${name}.yaml`), await fixture(name));
  return dir;
}

async function mutual(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    clock: systemClock,
    cwd: scratch,
    isColor: false,
    write: (text) => {
      stdout += text;
    },
    writeError: (text) => {
      stderr += text;
    },
    setExitCode: () => {},
    untilShutdown: () => new Promise(() => {}),
  });
  return { code, stdout, stderr };
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'mutual-istio-docs-'));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

interface Diagnostic {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
}

async function check(name: string, rootNamespace?: string) {
  const dir = await policyDir([name]);
  const root = rootNamespace === undefined ? [] : ['--root-namespace', rootNamespace];
  const { stdout } = await mutual(['policy', 'check', dir, ...root, '-o', 'json']);
  return JSON.parse(stdout) as { isValid: boolean; errors: Diagnostic[]; warnings: Diagnostic[] };
}

describe('mutual policy check on every example', () => {
  test('there are at least 25 examples, each with its source and what Istio does', async () => {
    const names = (await readdir(FIXTURES)).filter((name) => name.endsWith('.yaml'));
    assert.ok(names.length >= 25, `${names.length} examples`);
    for (const name of names) {
      const text = await readFile(join(FIXTURES, name), 'utf8');
      assert.match(text, /^# Source: https:\/\/istio\.io\//m, name);
      assert.match(text, /^# Istio: /m, name);
    }
  });

  // What Istio enforces, Mutual accepts: the warnings are the traps docs/policy.md describes.
  const accepted: Record<string, readonly string[]> = {
    'ref-deny-dev-post': ['http-fields-ignored-on-tcp'],
    'ref-deny-post-8080': ['http-fields-ignored-on-tcp'],
    'ref-audit-user-profile': ['http-fields-ignored-on-tcp'],
    'ref-allow-nothing-namespace': ['allow-nothing'],
    'ref-allow-all-namespace': [],
    'ref-allow-nothing-selector': ['allow-nothing'],
    'concept-deny-not-foo': [],
    'concept-allow-read': [],
    'concept-tester-paths': [],
    'concept-allow-nothing': ['allow-nothing'],
    'concept-deny-all': [],
    'concept-allow-all': [],
    'concept-header-version': [],
    'concept-public-get-post': [],
    'concept-authenticated-only': [],
    'concept-mongodb': [],
    'http-productpage-viewer': [],
    'http-details-viewer': [],
    'deny-method-get': ['http-fields-ignored-on-tcp'],
    'deny-method-get-x-token': ['http-fields-ignored-on-tcp'],
    'deny-allow-path-ip': [],
    'examples-foo-isolation': [],
    'examples-ns-isolation-except-ingress-allow': [],
    'examples-require-mtls': [],
    'examples-ns-isolation-except-ingress-deny': [],
    'conditions-supported': [],
    'pa-namespace-strict': [],
    'pa-permissive-finance-strict': [],
    'pa-finance-strict-8080-disable': [],
    'pa-finance-unset-8080-disable': [],
    'pa-namespace-strict-port-permissive': [],
    'migration-namespace-strict': [],
  };
  for (const [name, warnings] of Object.entries(accepted)) {
    test(`${name}: accepted`, async () => {
      const result = await check(name);
      assert.deepEqual(result.errors, [], name);
      assert.deepEqual(result.warnings.map((warning) => warning.code).sort(), [...warnings].sort(), name);
    });
  }

  test('istio-system examples: warned that it is not the root namespace; with --root-namespace istio-system, silent', async () => {
    for (const name of ['ref-allow-nothing-root-version', 'ingress-ip-blocks', 'migration-mesh-strict']) {
      const result = await check(name);
      assert.equal(result.isValid, true, name);
      const warning = result.warnings.find((each) => each.code === 'istio-root-namespace');
      assert.match(warning?.message ?? '', /not mesh-wide/, name);
      assert.match(warning?.hint ?? '', /metadata\.namespace: mutual-system/, name);
      const asIstio = await check(name, 'istio-system');
      assert.equal(
        asIstio.warnings.some((each) => each.code === 'istio-root-namespace'),
        false,
        name,
      );
    }
  });

  // What Mutual cannot enforce is refused, naming the field and what to use instead: never
  // dropped, which would widen an ALLOW or narrow a DENY.
  const refused: Record<string, { code: string; field: RegExp; message: RegExp }> = {
    'ref-allow-httpbin-jwt': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /spec\.rules\[0\]\.when\[0\]\.key/,
      message: /request\.auth\.claims\[iss\].*not supported/,
    },
    'ref-dry-run': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /istio\.io\/dry-run/,
      message: /dry-run.*Mutual would enforce/,
    },
    'ref-custom-ext-authz': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /spec\.action/,
      message: /CUSTOM/,
    },
    'concept-disable-jwt-for-healthz': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /source\.requestPrincipals/,
      message: /requestPrincipals is not supported/,
    },
    'concept-enable-jwt-for-admin': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /source\.notRequestPrincipals/,
      message: /notRequestPrincipals is not supported/,
    },
    'ingress-remote-ip-blocks': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /source\.remoteIpBlocks/,
      message: /remoteIpBlocks is not supported/,
    },
    'examples-require-jwt': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /source\.notRequestPrincipals/,
      message: /notRequestPrincipals/,
    },
    'examples-jwt-per-host': {
      code: 'MUTUAL_POLICY_INVALID',
      field: /source\.hosts/,
      message: /unknown field "hosts"/,
    },
    'conditions-sni-allow': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /when\[0\]\.key/,
      message: /connection\.sni/,
    },
    'conditions-sni-deny': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /when\[0\]\.key/,
      message: /connection\.sni/,
    },
    'conditions-jwt-audiences': {
      code: 'MUTUAL_POLICY_UNSUPPORTED',
      field: /when\[0\]\.key/,
      message: /request\.auth\.audiences/,
    },
    'conditions-unknown-key': {
      code: 'MUTUAL_POLICY_INVALID',
      field: /when\[0\]\.key/,
      message: /unknown condition key "request\.header\[version\]"/,
    },
  };
  for (const [name, expected] of Object.entries(refused)) {
    test(`${name}: refused with ${expected.code}, naming the field`, async () => {
      const result = await check(name);
      assert.equal(result.isValid, false, name);
      const error = result.errors.find((each) => each.code === expected.code);
      assert.ok(error, `${name}: ${JSON.stringify(result.errors)}`);
      // The message opens with the field's path: spec.rules[0].when[0].key: ...
      assert.match(error.message, expected.field, name);
      assert.match(error.message, expected.message, name);
      assert.ok((error.hint ?? '').length > 0, `${name}: a hint says what to do`);
    });
  }
});
