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
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import { repoRoot, runMutualInProcess } from '../e2e/run-mutual.ts';

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

function mutual(args: readonly string[]) {
  return runMutualInProcess(args, { cwd: scratch });
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

  test('YAML a page applies with kubectl -n, pasted without it: warned that it covers namespace default only', async () => {
    for (const name of ['migration-mesh-strict', 'migration-namespace-strict', 'concept-allow-nothing']) {
      const dir = join(scratch, `as-pasted-${name}`);
      await mkdir(dir);
      await writeFile(join(dir, `${name}.yaml`), await readFile(join(FIXTURES, `${name}.yaml`)));
      const { stdout } = await mutual(['policy', 'check', dir, '-o', 'json']);
      const warning = (JSON.parse(stdout) as { warnings: Diagnostic[] }).warnings.find(
        (each) => each.code === 'namespace-not-set',
      );
      assert.match(warning?.message ?? '', /applies only to namespace "default"/, name);
      assert.match(
        warning?.hint ?? '',
        /Set metadata\.namespace.*kubectl -n.*mutual-system makes it mesh-wide/,
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

/** One request to one workload, as `mutual policy explain` takes it. */
interface Ask {
  readonly to: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly port?: number;
  /** A principal (mTLS client), or undefined for plaintext. */
  readonly from?: string;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly sourceIp?: string;
  /** A TCP connection instead of an HTTP request. */
  readonly isTcp?: boolean;
}

type Answer = 'allow' | 'deny' | 'refused';

async function explain(dir: string, ask: Ask, rootNamespace?: string): Promise<Answer> {
  const args = [
    'policy',
    'explain',
    '--policy-dir',
    dir,
    '--namespace',
    ask.to,
    '--port',
    String(ask.port ?? 8000),
  ];
  for (const [key, value] of Object.entries(ask.labels ?? {})) args.push('--label', `${key}=${value}`);
  args.push(...(ask.from === undefined ? ['--plaintext'] : ['--from', ask.from]));
  if (!ask.isTcp) args.push('--method', ask.method ?? 'GET', '--path', ask.path ?? '/');
  for (const [name, value] of Object.entries(ask.headers ?? {})) args.push('--header', `${name}=${value}`);
  if (ask.sourceIp !== undefined) args.push('--source-ip', ask.sourceIp);
  if (rootNamespace !== undefined) args.push('--root-namespace', rootNamespace);
  const { code, stdout, stderr } = await mutual([...args, '-o', 'json']);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout) as { isRefusedByMode: boolean; decision: { allowed: boolean } };
  return result.isRefusedByMode ? 'refused' : result.decision.allowed ? 'allow' : 'deny';
}

const td = 'cluster.local';
const sa = (namespace: string, account: string) => `${td}/ns/${namespace}/sa/${account}`;
const httpbin = { to: 'foo', labels: { app: 'httpbin', version: 'v1' } };

/** Fixtures applied together, and Istio's answer (from the fixture's page) for each request. */
const EXPLAINED: ReadonlyArray<{
  readonly fixtures: readonly string[];
  readonly rootNamespace?: string;
  readonly cases: ReadonlyArray<readonly [Ask, Answer]>;
}> = [
  {
    fixtures: ['ref-deny-dev-post'],
    cases: [
      [{ ...httpbin, from: sa('dev', 'x'), method: 'POST' }, 'deny'],
      [{ ...httpbin, from: sa('dev', 'x'), method: 'GET' }, 'allow'],
      [{ ...httpbin, from: sa('test', 'x'), method: 'POST' }, 'allow'],
      // DENY on TCP: the method cannot be read, so the rule matches every connection from dev.
      [{ ...httpbin, from: sa('dev', 'x'), isTcp: true }, 'deny'],
      [{ ...httpbin, from: sa('test', 'x'), isTcp: true }, 'allow'],
    ],
  },
  {
    fixtures: ['ref-deny-post-8080'],
    cases: [
      [{ ...httpbin, from: sa('foo', 'x'), method: 'POST', port: 8080 }, 'deny'],
      [{ ...httpbin, from: sa('foo', 'x'), method: 'POST', port: 9000 }, 'allow'],
      [{ ...httpbin, from: sa('foo', 'x'), method: 'GET', port: 8080 }, 'allow'],
      [{ ...httpbin, from: sa('foo', 'x'), isTcp: true, port: 8080 }, 'deny'],
      [{ ...httpbin, from: sa('foo', 'x'), isTcp: true, port: 9000 }, 'allow'],
    ],
  },
  {
    fixtures: ['ref-audit-user-profile'],
    cases: [
      [{ to: 'ns1', labels: { app: 'myapi' }, method: 'GET', path: '/user/profile/7' }, 'allow'],
      [{ to: 'ns1', labels: { app: 'myapi' }, method: 'DELETE', path: '/user/profile/7' }, 'allow'],
    ],
  },
  {
    fixtures: ['ref-allow-nothing-namespace', 'ref-allow-nothing-selector'],
    cases: [
      [{ ...httpbin, from: sa('foo', 'sleep') }, 'deny'],
      [{ ...httpbin, from: sa('foo', 'sleep'), isTcp: true }, 'deny'],
      [{ to: 'bar', labels: { app: 'httpbin' }, from: sa('bar', 'sleep') }, 'deny'],
      [{ to: 'bar', labels: { app: 'other' }, from: sa('bar', 'sleep') }, 'allow'],
    ],
  },
  {
    fixtures: ['ref-allow-all-namespace'],
    cases: [
      [{ ...httpbin }, 'allow'],
      [{ ...httpbin, isTcp: true }, 'allow'],
    ],
  },
  {
    // In Istio's root namespace: every namespace's version: v1 workloads.
    fixtures: ['ref-allow-nothing-root-version'],
    rootNamespace: 'istio-system',
    cases: [
      [{ ...httpbin, from: sa('foo', 'sleep') }, 'deny'],
      [{ to: 'bar', labels: { version: 'v1' }, from: sa('foo', 'sleep') }, 'deny'],
      [{ to: 'bar', labels: { version: 'v2' }, from: sa('foo', 'sleep') }, 'allow'],
    ],
  },
  {
    fixtures: ['concept-deny-not-foo'],
    cases: [
      [{ ...httpbin, from: sa('bar', 'sleep') }, 'deny'],
      [{ ...httpbin, from: sa('foo', 'sleep') }, 'allow'],
      [{ ...httpbin }, 'deny'],
      [{ to: 'foo', labels: { app: 'httpbin', version: 'v2' }, from: sa('bar', 'sleep') }, 'allow'],
    ],
  },
  {
    fixtures: ['concept-allow-read'],
    cases: [
      [{ to: 'default', labels: { app: 'products' }, method: 'GET' }, 'allow'],
      [{ to: 'default', labels: { app: 'products' }, method: 'HEAD' }, 'allow'],
      [{ to: 'default', labels: { app: 'products' }, method: 'POST' }, 'deny'],
    ],
  },
  {
    fixtures: ['concept-tester-paths'],
    cases: [
      [{ to: 'default', labels: { app: 'products' }, path: '/test/a/b' }, 'allow'],
      [{ to: 'default', labels: { app: 'products' }, path: '/api/v1/info?verbose=1' }, 'allow'],
      [{ to: 'default', labels: { app: 'products' }, path: '/info' }, 'allow'],
      [{ to: 'default', labels: { app: 'products' }, path: '/test' }, 'deny'],
      [{ to: 'default', labels: { app: 'products' }, path: '/information' }, 'deny'],
      [{ to: 'default', labels: { app: 'products' }, path: '/testing' }, 'deny'],
    ],
  },
  {
    fixtures: ['concept-allow-nothing'],
    cases: [[{ to: 'default', labels: { app: 'products' }, from: sa('default', 'x') }, 'deny']],
  },
  {
    // DENY takes precedence over an ALLOW that matches everything.
    fixtures: ['concept-deny-all', 'concept-allow-all'],
    cases: [
      [{ to: 'default', labels: { app: 'products' }, from: sa('default', 'x') }, 'deny'],
      [{ to: 'default', labels: { app: 'products' }, isTcp: true }, 'deny'],
    ],
  },
  {
    fixtures: ['concept-header-version'],
    cases: [
      [{ ...httpbin, from: sa('default', 'sleep'), headers: { version: 'v1' } }, 'allow'],
      [{ ...httpbin, from: sa('default', 'sleep'), headers: { version: 'v2' } }, 'allow'],
      [{ ...httpbin, from: sa('default', 'sleep'), headers: { version: 'v3' } }, 'deny'],
      [{ ...httpbin, from: sa('default', 'sleep') }, 'deny'],
      [{ ...httpbin, from: sa('default', 'sleep'), method: 'POST', headers: { version: 'v1' } }, 'deny'],
      [{ ...httpbin, from: sa('default', 'other'), headers: { version: 'v1' } }, 'deny'],
      [{ ...httpbin, from: sa('default', 'sleep'), isTcp: true }, 'deny'],
    ],
  },
  {
    fixtures: ['concept-public-get-post'],
    cases: [
      [{ ...httpbin }, 'allow'],
      [{ ...httpbin, method: 'POST' }, 'allow'],
      [{ ...httpbin, method: 'DELETE' }, 'deny'],
    ],
  },
  {
    fixtures: ['concept-authenticated-only'],
    cases: [
      [{ ...httpbin }, 'deny'],
      [{ ...httpbin, from: sa('bar', 'anyone') }, 'allow'],
    ],
  },
  {
    fixtures: ['concept-mongodb'],
    cases: [
      [
        {
          to: 'default',
          labels: { app: 'mongodb' },
          from: sa('default', 'bookinfo-ratings-v2'),
          isTcp: true,
          port: 27017,
        },
        'allow',
      ],
      [
        {
          to: 'default',
          labels: { app: 'mongodb' },
          from: sa('default', 'bookinfo-ratings-v1'),
          isTcp: true,
          port: 27017,
        },
        'deny',
      ],
      [
        {
          to: 'default',
          labels: { app: 'mongodb' },
          from: sa('default', 'bookinfo-ratings-v2'),
          isTcp: true,
          port: 27018,
        },
        'deny',
      ],
    ],
  },
  {
    // The HTTP task: allow-nothing in default, then the viewers.
    fixtures: [
      'ref-allow-nothing-namespace',
      'concept-allow-nothing',
      'http-productpage-viewer',
      'http-details-viewer',
    ],
    cases: [
      [{ to: 'default', labels: { app: 'productpage' } }, 'allow'],
      [{ to: 'default', labels: { app: 'productpage' }, method: 'POST' }, 'deny'],
      [{ to: 'default', labels: { app: 'details' }, from: sa('default', 'bookinfo-productpage') }, 'allow'],
      [{ to: 'default', labels: { app: 'details' }, from: sa('default', 'bookinfo-reviews') }, 'deny'],
      [{ to: 'default', labels: { app: 'reviews' }, from: sa('default', 'bookinfo-productpage') }, 'deny'],
    ],
  },
  {
    fixtures: ['deny-method-get'],
    cases: [
      [{ to: 'foo', labels: { app: 'httpbin' }, from: sa('foo', 'sleep'), path: '/get' }, 'deny'],
      [
        { to: 'foo', labels: { app: 'httpbin' }, from: sa('foo', 'sleep'), method: 'POST', path: '/post' },
        'allow',
      ],
    ],
  },
  {
    // The explicit-deny task, last steps: DENY unless x-token: admin, then ALLOW /ip only.
    fixtures: ['deny-method-get-x-token', 'deny-allow-path-ip'],
    cases: [
      [
        {
          to: 'foo',
          labels: { app: 'httpbin' },
          from: sa('foo', 'sleep'),
          path: '/ip',
          headers: { 'x-token': 'guest' },
        },
        'deny',
      ],
      [
        {
          to: 'foo',
          labels: { app: 'httpbin' },
          from: sa('foo', 'sleep'),
          path: '/ip',
          headers: { 'x-token': 'admin' },
        },
        'allow',
      ],
      [
        {
          to: 'foo',
          labels: { app: 'httpbin' },
          from: sa('foo', 'sleep'),
          path: '/get',
          headers: { 'x-token': 'admin' },
        },
        'deny',
      ],
      [{ to: 'foo', labels: { app: 'httpbin' }, from: sa('foo', 'sleep'), path: '/ip' }, 'deny'],
      [
        { to: 'foo', labels: { app: 'httpbin' }, from: sa('foo', 'sleep'), path: '/ip', method: 'POST' },
        'allow',
      ],
    ],
  },
  {
    fixtures: ['ingress-ip-blocks'],
    rootNamespace: 'istio-system',
    cases: [
      [{ to: 'istio-system', labels: { app: 'istio-ingressgateway' }, sourceIp: '1.2.3.4' }, 'allow'],
      [{ to: 'istio-system', labels: { app: 'istio-ingressgateway' }, sourceIp: '5.6.7.200' }, 'allow'],
      [{ to: 'istio-system', labels: { app: 'istio-ingressgateway' }, sourceIp: '1.2.3.5' }, 'deny'],
      [{ to: 'istio-system', labels: { app: 'istio-ingressgateway' }, sourceIp: '5.6.8.1' }, 'deny'],
    ],
  },
  {
    fixtures: ['examples-foo-isolation'],
    cases: [
      [{ ...httpbin, from: sa('foo', 'sleep') }, 'allow'],
      [{ ...httpbin, from: sa('bar', 'sleep') }, 'deny'],
      [{ ...httpbin }, 'deny'],
    ],
  },
  {
    fixtures: ['examples-ns-isolation-except-ingress-allow'],
    cases: [
      [{ ...httpbin, from: sa('istio-system', 'istio-ingressgateway-service-account') }, 'allow'],
      [{ ...httpbin, from: sa('istio-system', 'other') }, 'deny'],
      [{ ...httpbin, from: sa('foo', 'sleep') }, 'allow'],
    ],
  },
  {
    fixtures: ['examples-require-mtls'],
    cases: [
      [{ ...httpbin }, 'deny'],
      [{ ...httpbin, isTcp: true }, 'deny'],
      [{ ...httpbin, from: sa('bar', 'sleep') }, 'allow'],
    ],
  },
  {
    fixtures: ['examples-ns-isolation-except-ingress-deny', 'ref-allow-all-namespace'],
    cases: [
      [{ ...httpbin, from: sa('bar', 'sleep') }, 'deny'],
      [{ ...httpbin, from: sa('foo', 'sleep') }, 'allow'],
      [{ ...httpbin, from: sa('istio-system', 'istio-ingressgateway-service-account') }, 'allow'],
      [{ ...httpbin }, 'deny'],
    ],
  },
  {
    fixtures: ['conditions-supported'],
    cases: [
      [{ ...httpbin, headers: { 'User-Agent': 'Mozilla/5.0' } }, 'allow'],
      [{ ...httpbin, headers: { 'User-Agent': 'curl/8' } }, 'deny'],
      [{ ...httpbin, sourceIp: '10.1.2.3' }, 'allow'],
      [{ ...httpbin, from: sa('default', 'x') }, 'allow'],
      [{ ...httpbin, from: sa('default', 'productpage'), isTcp: true }, 'allow'],
      [{ ...httpbin, port: 443 }, 'allow'],
      [{ ...httpbin, isTcp: true }, 'deny'],
    ],
  },
  {
    fixtures: ['pa-namespace-strict'],
    cases: [
      [{ ...httpbin }, 'refused'],
      [{ ...httpbin, from: sa('bar', 'sleep') }, 'allow'],
      [{ to: 'bar', labels: { app: 'httpbin' } }, 'allow'],
    ],
  },
  {
    fixtures: ['pa-permissive-finance-strict'],
    cases: [
      [{ to: 'foo', labels: { app: 'finance' } }, 'refused'],
      [{ to: 'foo', labels: { app: 'finance' }, from: sa('foo', 'x') }, 'allow'],
      [{ to: 'foo', labels: { app: 'other' } }, 'allow'],
    ],
  },
  {
    fixtures: ['pa-finance-strict-8080-disable'],
    cases: [
      [{ to: 'foo', labels: { app: 'finance' }, port: 8080 }, 'allow'],
      [{ to: 'foo', labels: { app: 'finance' }, port: 9090 }, 'refused'],
      [{ to: 'foo', labels: { app: 'other' }, port: 9090 }, 'allow'],
    ],
  },
  {
    // Inherits the mesh's STRICT (the migration task's mesh-wide policy) except on 8080.
    fixtures: ['pa-finance-unset-8080-disable', 'migration-mesh-strict'],
    rootNamespace: 'istio-system',
    cases: [
      [{ to: 'foo', labels: { app: 'finance' }, port: 8080 }, 'allow'],
      [{ to: 'foo', labels: { app: 'finance' }, port: 9090 }, 'refused'],
      [{ to: 'bar', labels: { app: 'httpbin' }, port: 8000 }, 'refused'],
    ],
  },
  {
    fixtures: ['pa-namespace-strict-port-permissive'],
    cases: [
      [{ to: 'foo', labels: { app: 'finance' }, port: 8080 }, 'allow'],
      [{ to: 'foo', labels: { app: 'finance' }, port: 8080, from: sa('foo', 'x') }, 'allow'],
      [{ to: 'foo', labels: { app: 'finance' }, port: 9090 }, 'refused'],
      [{ to: 'foo', labels: { app: 'other' }, port: 8080 }, 'refused'],
    ],
  },
  {
    fixtures: ['migration-namespace-strict'],
    cases: [
      [{ to: 'foo', labels: { app: 'httpbin' } }, 'refused'],
      [{ to: 'foo', labels: { app: 'httpbin' }, from: sa('bar', 'sleep') }, 'allow'],
      [{ to: 'bar', labels: { app: 'httpbin' } }, 'allow'],
    ],
  },
];

describe('mutual policy explain answers as Istio does', () => {
  for (const { fixtures, rootNamespace, cases } of EXPLAINED) {
    test(fixtures.join(' + '), async () => {
      const dir = await policyDir(fixtures);
      const answers = await Promise.all(cases.map(([ask]) => explain(dir, ask, rootNamespace)));
      const describe = (ask: Ask) =>
        `${ask.from ?? 'plaintext'} → ${ask.to}${JSON.stringify(ask.labels ?? {})}:${ask.port ?? 8000} ${ask.isTcp ? 'TCP' : `${ask.method ?? 'GET'} ${ask.path ?? '/'} ${JSON.stringify(ask.headers ?? {})}`}${ask.sourceIp ? ` from ${ask.sourceIp}` : ''}`;
      assert.deepEqual(
        cases.map(([ask], i) => `${describe(ask)}: ${answers[i]}`),
        cases.map(([ask, answer]) => `${describe(ask)}: ${answer}`),
      );
    });
  }

  test('the AUDIT example marks only GET /user/profile/*, and never decides', async () => {
    const dir = await policyDir(['ref-audit-user-profile']);
    const audited = async (method: string, path: string) => {
      const { stdout } = await mutual([
        ...['policy', 'explain', '--policy-dir', dir, '--namespace', 'ns1', '--label', 'app=myapi'],
        ...['--port', '8000', '--plaintext', '--method', method, '--path', path, '-o', 'json'],
      ]);
      return (JSON.parse(stdout) as { decision: { audited?: string[] } }).decision.audited ?? [];
    };
    assert.deepEqual(await audited('GET', '/user/profile/7'), ['ns1/anyname']);
    assert.deepEqual(await audited('GET', '/user/other'), []);
    assert.deepEqual(await audited('POST', '/user/profile/7'), []);
  });

  test("istio-system under Mutual's own root namespace: the allow-nothing covers istio-system only (the warned difference)", async () => {
    const dir = await policyDir(['ref-allow-nothing-root-version']);
    assert.equal(await explain(dir, { ...httpbin, from: sa('foo', 'sleep') }), 'allow');
    assert.equal(
      await explain(dir, { to: 'istio-system', labels: { version: 'v1' }, from: sa('foo', 'sleep') }),
      'deny',
    );
  });
});

// Through real sidecars: httpbin (foo, app=httpbin, version=v1) on 8000, products (default,
// app=products) on 8000, finance (foo, app=finance) on 8080 and 9090; clients foo/sleep,
// bar/sleep and the ingress gateway's identity, each with an upstream to every inbound port, and
// plaintext clients connecting to the inbound ports directly.
describe('through real sidecars', () => {
  const INGRESS = 'istio-ingressgateway-service-account';
  let dir: string;
  const apps: Server[] = [];
  const servers = new Map<string, ProxyProcess>();
  const clients = new Map<string, ProxyProcess>();
  /** The inbound listeners, in the clients' upstream order. */
  const targets = ['httpbin:8000', 'products:8000', 'finance:8080', 'finance:9090'] as const;
  type Target = (typeof targets)[number];
  const inbound = new Map<Target, number>();

  async function writeSet(name: string, fixtures: readonly string[]): Promise<string> {
    const set = join(dir, name);
    await rm(set, { recursive: true, force: true });
    await mkdir(set, { recursive: true });
    for (const each of fixtures) await writeFile(join(set, `${each}.yaml`), await fixture(each));
    return set;
  }

  async function startApp(): Promise<number> {
    const app = createServer((request, response) => response.end(`ok ${request.method} ${request.url}`));
    apps.push(app);
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    return (app.address() as AddressInfo).port;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-istio-docs-sidecars-'));
    const pki = await createTestPki(join(dir, 'pki'));
    const workloads = {
      httpbin: {
        ns: 'foo',
        labels: ['app=httpbin', 'version=v1'],
        ports: [8000],
        fixtures: ['ref-allow-nothing-namespace'],
      },
      products: {
        ns: 'default',
        labels: ['app=products'],
        ports: [8000],
        fixtures: ['concept-tester-paths'],
      },
      finance: {
        ns: 'foo',
        labels: ['app=finance'],
        ports: [8080, 9090],
        fixtures: ['pa-namespace-strict-port-permissive'],
      },
    };
    const ids = new Map<string, string>();
    await Promise.all(
      Object.entries(workloads).map(async ([name, workload]) => {
        const identity = await pki.workload(name, { ns: workload.ns });
        ids.set(name, identity.spiffeId);
        const appPorts = await Promise.all(workload.ports.map(() => startApp()));
        const proxy = await startProxyProcess([
          ...['--cert', identity.certFile, '--key', identity.keyFile, '--bundle', identity.bundleFile],
          ...appPorts.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
          ...appPorts.flatMap((port, i) => ['--policy-port', `${port}=${workload.ports[i]}`]),
          ...['--policy-dir', await writeSet(name, workload.fixtures), '--namespace', workload.ns],
          ...workload.labels.flatMap((label) => ['--label', label]),
          ...['--admin-listen', '127.0.0.1:0'],
        ]);
        servers.set(name, proxy);
        workload.ports.forEach((port, i) => {
          inbound.set(`${name}:${port}` as Target, proxy.inbound[i]!.port);
        });
      }),
    );
    const callers = {
      'foo/sleep': { ns: 'foo', sa: 'sleep' },
      'bar/sleep': { ns: 'bar', sa: 'sleep' },
      ingress: { ns: 'istio-system', sa: INGRESS },
    };
    await Promise.all(
      Object.entries(callers).map(async ([name, options]) => {
        const identity = await pki.workload(name.replace('/', '-'), options);
        const upstreams = targets.flatMap((target) => [
          '--upstream',
          `127.0.0.1:0=${ids.get(target.split(':')[0]!)}@127.0.0.1:${inbound.get(target)}`,
        ]);
        clients.set(
          name,
          await startProxyProcess([
            ...['--cert', identity.certFile, '--key', identity.keyFile, '--bundle', identity.bundleFile],
            ...upstreams,
            ...['--admin-listen', '127.0.0.1:0'],
          ]),
        );
      }),
    );
    await Promise.all([...servers.values(), ...clients.values()].map((proxy) => proxy.untilReady()));
  });

  after(async () => {
    await Promise.all([...servers.values(), ...clients.values()].map((proxy) => proxy.stop()));
    for (const app of apps) {
      app.close();
      app.closeAllConnections();
    }
    await rm(dir, { recursive: true, force: true });
  });

  /** Replaces httpbin's policies with these fixtures and waits until its sidecar has loaded them. */
  async function applyToHttpbin(fixtures: readonly string[]): Promise<void> {
    const proxy = servers.get('httpbin')!;
    const loaded = () => proxy.output().match(/policies loaded/g)?.length ?? 0;
    const before = loaded();
    await writeSet('httpbin', fixtures);
    await waitUntil(async () => loaded() > before, `httpbin's sidecar to load ${fixtures.join(', ')}`);
  }

  /**
   * One HTTP/1.1 request from `caller` (through its sidecar, mTLS) or in plaintext straight to the
   * inbound port: the status (0 when the connection closed without an answer) and the denier.
   */
  function request(
    caller: string,
    target: Target,
    { method = 'GET', path = '/', headers = '' } = {},
  ): Promise<{ status: number; deniedBy: string | undefined }> {
    const port =
      caller === 'plaintext'
        ? inbound.get(target)!
        : clients.get(caller)!.outbound[targets.indexOf(target)]!.port;
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.on('error', () => {});
      socket.on('close', () =>
        resolve({
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
          deniedBy: /\r\nx-mutual-denied-by: ([^\r]*)/i.exec(text)?.[1],
        }),
      );
      socket.end(
        `${method} ${path} HTTP/1.1\r\nHost: app.test\r\n${headers}Connection: close\r\n\r\n`,
        'latin1',
      );
    });
  }

  const status = async (...args: Parameters<typeof request>) => (await request(...args)).status;

  test('allow-nothing (spec: {}) in foo: every caller, mTLS or plaintext, gets 403', async () => {
    assert.deepEqual(await request('foo/sleep', 'httpbin:8000'), {
      status: 403,
      deniedBy: 'foo/allow-nothing',
    });
    // Only meshed callers are told which policy refused them.
    assert.deepEqual(await request('plaintext', 'httpbin:8000'), { status: 403, deniedBy: undefined });
  });

  test('explicit-deny task: the DENY unless x-token: admin wins over ALLOW /ip', async () => {
    await applyToHttpbin(['deny-method-get-x-token', 'deny-allow-path-ip']);
    const token = (value: string) => ({ path: '/ip', headers: `x-token: ${value}\r\n` });
    assert.deepEqual(await request('foo/sleep', 'httpbin:8000', token('guest')), {
      status: 403,
      deniedBy: 'foo/deny-method-get',
    });
    assert.equal(await status('foo/sleep', 'httpbin:8000', token('admin')), 200);
    assert.equal(await status('foo/sleep', 'httpbin:8000', { path: '/ip' }), 403);
    assert.deepEqual(
      await request('foo/sleep', 'httpbin:8000', { path: '/get', headers: 'x-token: admin\r\n' }),
      { status: 403, deniedBy: 'foo/allow-path-ip' },
    );
  });

  test('DENY notNamespaces + notPrincipals: only foo and the ingress identity pass; plaintext is denied', async () => {
    await applyToHttpbin(['examples-ns-isolation-except-ingress-deny', 'ref-allow-all-namespace']);
    assert.equal(await status('foo/sleep', 'httpbin:8000'), 200);
    assert.equal(await status('ingress', 'httpbin:8000'), 200);
    assert.deepEqual(await request('bar/sleep', 'httpbin:8000'), {
      status: 403,
      deniedBy: 'foo/ns-isolation-except-ingress',
    });
    assert.equal(await status('plaintext', 'httpbin:8000'), 403);
  });

  test('DENY notPrincipals: ["*"] (require-mtls): plaintext is denied, any mTLS peer passes', async () => {
    await applyToHttpbin(['examples-require-mtls']);
    assert.equal(await status('bar/sleep', 'httpbin:8000'), 200);
    assert.equal(await status('plaintext', 'httpbin:8000'), 403);
  });

  test('paths ["/test/*", "*/info"]: the prefix and the suffix, on the path as the app gets it', async () => {
    const answers: Record<string, number> = {};
    for (const path of [
      '/test/a',
      '/v1/info',
      '/info?x=1',
      '/test',
      '/information',
      '/test/../admin',
      '/x/../info',
    ]) {
      answers[path] = await status('foo/sleep', 'products:8000', { path });
    }
    assert.deepEqual(answers, {
      '/test/a': 200,
      '/v1/info': 200,
      '/info?x=1': 200,
      '/test': 403,
      '/information': 403,
      '/test/../admin': 403,
      '/x/../info': 200,
    });
  });

  test('namespace STRICT, finance port 8080 PERMISSIVE: plaintext in on 8080 only, mTLS on both', async () => {
    assert.equal(await status('plaintext', 'finance:8080'), 200);
    assert.equal(await status('foo/sleep', 'finance:8080'), 200);
    assert.equal(await status('foo/sleep', 'finance:9090'), 200);
    assert.equal(await status('plaintext', 'finance:9090'), 0);
  });
});
