import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pa, policySet, ROOT, workload } from './test-fixtures.ts';
import type { PeerAuthenticationExplanation, WorkloadRef } from './types.ts';

const web = workload('demo', { app: 'web' });
const api = workload('demo', { app: 'api' });
const other = workload('other', { app: 'web' });

interface Case {
  name: string;
  yaml: string;
  workload: WorkloadRef;
  port?: number;
  expect: PeerAuthenticationExplanation;
}

const cases: Case[] = [
  {
    name: 'no policy: PERMISSIVE by default',
    yaml: '',
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'mesh-wide STRICT in the root namespace',
    yaml: pa('default', ROOT, 'mtls: {mode: STRICT}'),
    workload: web,
    expect: { mode: 'STRICT', level: 'mesh', policy: `${ROOT}/default` },
  },
  {
    name: 'mesh UNSET is PERMISSIVE',
    yaml: pa('default', ROOT, 'mtls: {mode: UNSET}'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'Istio example: namespace-wide STRICT applies to every workload in it',
    yaml: pa('default', 'demo', 'mtls:\n  mode: STRICT'),
    workload: api,
    expect: { mode: 'STRICT', level: 'namespace', policy: 'demo/default' },
  },
  {
    name: 'namespace-wide STRICT does not reach another namespace',
    yaml: pa('default', 'demo', 'mtls: {mode: STRICT}'),
    workload: other,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'namespace overrides mesh',
    yaml: pa('m', ROOT, 'mtls: {mode: STRICT}') + pa('n', 'demo', 'mtls: {mode: PERMISSIVE}'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'namespace', policy: 'demo/n' },
  },
  {
    name: 'namespace UNSET inherits mesh',
    yaml: pa('m', ROOT, 'mtls: {mode: STRICT}') + pa('n', 'demo', 'mtls: {mode: UNSET}'),
    workload: web,
    expect: { mode: 'STRICT', level: 'mesh', policy: `${ROOT}/m` },
  },
  {
    name: 'namespace with no mtls at all inherits mesh',
    yaml: pa('m', ROOT, 'mtls: {mode: DISABLE}') + pa('n', 'demo', '{}'),
    workload: web,
    expect: { mode: 'DISABLE', level: 'mesh', policy: `${ROOT}/m` },
  },
  {
    name: 'Istio example: selector STRICT for one workload',
    yaml:
      pa('ns', 'demo', 'mtls: {mode: PERMISSIVE}') +
      pa('web', 'demo', 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}'),
    workload: web,
    expect: { mode: 'STRICT', level: 'workload', policy: 'demo/web' },
  },
  {
    name: 'Istio example: ...beside PERMISSIVE neighbours',
    yaml:
      pa('ns', 'demo', 'mtls: {mode: PERMISSIVE}') +
      pa('web', 'demo', 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}'),
    workload: api,
    expect: { mode: 'PERMISSIVE', level: 'namespace', policy: 'demo/ns' },
  },
  {
    name: 'selector needs every label',
    yaml: pa('web', 'demo', 'selector:\n  matchLabels: {app: web, tier: front}\nmtls: {mode: STRICT}'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'empty matchLabels is namespace-wide',
    yaml: pa('all', 'demo', 'selector:\n  matchLabels: {}\nmtls: {mode: STRICT}'),
    workload: api,
    expect: { mode: 'STRICT', level: 'namespace', policy: 'demo/all' },
  },
  {
    name: 'workload UNSET inherits namespace',
    yaml:
      pa('ns', 'demo', 'mtls: {mode: STRICT}') +
      pa('web', 'demo', 'selector:\n  matchLabels: {app: web}\nmtls: {mode: UNSET}'),
    workload: web,
    expect: { mode: 'STRICT', level: 'namespace', policy: 'demo/ns' },
  },
  {
    name: 'Istio trap: a selector policy in the root namespace is ignored',
    yaml: pa('web', ROOT, 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'Istio trap: the wrong namespace protects nothing',
    yaml: pa('web', 'default', 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'two namespace-level policies: the oldest wins',
    yaml:
      pa('b-older', 'demo', 'mtls: {mode: STRICT}', '2026-01-01T00:00:00Z') +
      pa('a-newer', 'demo', 'mtls: {mode: DISABLE}', '2026-02-01T00:00:00Z'),
    workload: web,
    expect: { mode: 'STRICT', level: 'namespace', policy: 'demo/b-older' },
  },
  {
    name: 'same age: the name decides',
    yaml:
      pa('zeta', 'demo', 'mtls: {mode: STRICT}', '2026-01-01T00:00:00Z') +
      pa('alpha', 'demo', 'mtls: {mode: DISABLE}', '2026-01-01T00:00:00Z'),
    workload: web,
    expect: { mode: 'DISABLE', level: 'namespace', policy: 'demo/alpha' },
  },
  {
    name: 'two mesh-level policies: the oldest wins, even if UNSET',
    yaml:
      pa('old', ROOT, 'mtls: {mode: UNSET}', '2025-01-01T00:00:00Z') +
      pa('new', ROOT, 'mtls: {mode: STRICT}', '2026-01-01T00:00:00Z'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
  {
    name: 'two workload policies matching: the oldest wins',
    yaml:
      pa(
        'newer',
        'demo',
        'selector:\n  matchLabels: {app: web}\nmtls: {mode: DISABLE}',
        '2026-03-01T00:00:00Z',
      ) +
      pa(
        'older',
        'demo',
        'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}',
        '2026-01-01T00:00:00Z',
      ),
    workload: web,
    expect: { mode: 'STRICT', level: 'workload', policy: 'demo/older' },
  },
  {
    name: 'portLevelMtls overrides the workload mode on its port',
    yaml: pa(
      'web',
      'demo',
      'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}\nportLevelMtls:\n  8080: {mode: DISABLE}',
    ),
    workload: web,
    port: 8080,
    expect: { mode: 'DISABLE', level: 'port', policy: 'demo/web' },
  },
  {
    name: '...and not on other ports',
    yaml: pa(
      'web',
      'demo',
      'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}\nportLevelMtls:\n  8080: {mode: DISABLE}',
    ),
    workload: web,
    port: 9090,
    expect: { mode: 'STRICT', level: 'workload', policy: 'demo/web' },
  },
  {
    name: 'port UNSET takes the workload mode (here from the namespace)',
    yaml:
      pa('ns', 'demo', 'mtls: {mode: STRICT}') +
      pa('web', 'demo', 'selector:\n  matchLabels: {app: web}\nportLevelMtls:\n  "8080": {mode: UNSET}'),
    workload: web,
    port: 8080,
    expect: { mode: 'STRICT', level: 'namespace', policy: 'demo/ns' },
  },
  {
    name: 'port-level PERMISSIVE under mesh STRICT (health-check port pattern)',
    yaml:
      pa('m', ROOT, 'mtls: {mode: STRICT}') +
      pa('web', 'demo', 'selector:\n  matchLabels: {app: web}\nportLevelMtls:\n  9000: {mode: PERMISSIVE}'),
    workload: web,
    port: 9000,
    expect: { mode: 'PERMISSIVE', level: 'port', policy: 'demo/web' },
  },
  {
    name: 'workload in the root namespace gets the mesh policy',
    yaml: pa('m', ROOT, 'mtls: {mode: STRICT}'),
    workload: workload(ROOT, { app: 'identity' }),
    expect: { mode: 'STRICT', level: 'mesh', policy: `${ROOT}/m` },
  },
  {
    name: 'v1beta1 and security.mutual.dev/v1 are read alike',
    yaml:
      pa('m', ROOT, 'mtls: {mode: STRICT}', undefined, 'security.istio.io/v1beta1') +
      pa('n', 'demo', 'mtls: {mode: DISABLE}', undefined, 'security.mutual.dev/v1'),
    workload: web,
    expect: { mode: 'DISABLE', level: 'namespace', policy: 'demo/n' },
  },
  {
    name: 'another root namespace can be configured',
    yaml: pa('m', 'istio-system', 'mtls: {mode: STRICT}'),
    workload: web,
    expect: { mode: 'PERMISSIVE', level: 'default' },
  },
];

for (const c of cases) {
  test(`peer authentication: ${c.name}`, () => {
    const policy = policySet(c.yaml).forWorkload(c.workload);
    const port = c.port ?? 8080;
    assert.deepEqual(policy.explainPeerAuthentication(port), c.expect);
    assert.equal(policy.peerAuthenticationMode(port), c.expect.mode);
  });
}

test('peer authentication: the root namespace is an option', () => {
  const set = policySet(pa('m', 'istio-system', 'mtls: {mode: STRICT}'), 'istio-system');
  assert.equal(set.forWorkload(web).peerAuthenticationMode(80), 'STRICT');
});
