// `mutual install | kubectl apply --dry-run=client --validate=false -o yaml -f -` with the real
// kubectl. kubectl needs API discovery to map kinds to resources even for a client dry run, so a
// local HTTP server answers the discovery documents (/api, /apis, /api/v1, /apis/G/V) for the
// built-in kinds we render, with their real scopes, and 404 for every object (nothing exists yet).
// No API server validates anything here: kubectl parses, maps and prints.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { parseObjects, runInstall } from './install-harness.ts';

/** group/version → resource → [kind, namespaced], as a real API server reports them. */
const DISCOVERY: Record<string, Record<string, [string, boolean]>> = {
  v1: {
    namespaces: ['Namespace', false],
    serviceaccounts: ['ServiceAccount', true],
    services: ['Service', true],
    configmaps: ['ConfigMap', true],
    secrets: ['Secret', true],
  },
  'apps/v1': { deployments: ['Deployment', true] },
  'policy/v1': { poddisruptionbudgets: ['PodDisruptionBudget', true] },
  'rbac.authorization.k8s.io/v1': {
    clusterroles: ['ClusterRole', false],
    clusterrolebindings: ['ClusterRoleBinding', false],
    roles: ['Role', true],
    rolebindings: ['RoleBinding', true],
  },
  'admissionregistration.k8s.io/v1': {
    mutatingwebhookconfigurations: ['MutatingWebhookConfiguration', false],
    validatingwebhookconfigurations: ['ValidatingWebhookConfiguration', false],
  },
  'apiextensions.k8s.io/v1': { customresourcedefinitions: ['CustomResourceDefinition', false] },
};

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).error === undefined;
let server: Server;
let dir: string;
let kubeconfig: string;

before(async () => {
  if (!hasKubectl) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-install-kubectl-'));
  server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0]!;
    const answer = discovery(path);
    response.writeHead(answer ? 200 : 404, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify(
        answer ?? { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 },
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: local, cluster: {server: "http://127.0.0.1:${port}"}}]`,
      'users: [{name: local, user: {}}]',
      'contexts: [{name: local, context: {cluster: local, user: local}}]',
      'current-context: local',
    ].join('\n'),
  );
});

after(async () => {
  if (!hasKubectl) return;
  server.close();
  await rm(dir, { recursive: true, force: true });
});

function discovery(path: string): unknown {
  const resourceList = (groupVersion: string) => ({
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: Object.entries(DISCOVERY[groupVersion]!).map(([name, [kind, namespaced]]) => ({
      name,
      singularName: kind.toLowerCase(),
      namespaced,
      kind,
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    })),
  });
  if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  if (path === '/api/v1') return resourceList('v1');
  if (path === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: Object.keys(DISCOVERY)
        .filter((groupVersion) => groupVersion.includes('/'))
        .map((groupVersion) => {
          const [name, version] = groupVersion.split('/') as [string, string];
          const preferred = { groupVersion, version };
          return { name, versions: [preferred], preferredVersion: preferred };
        }),
    };
  }
  const match = /^\/apis\/([^/]+\/[^/]+)$/.exec(path);
  return match && DISCOVERY[match[1]!] ? resourceList(match[1]!) : undefined;
}

function kubectl(
  args: string[],
  input: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', args, {
      env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dir },
      timeout: 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

test('kubectl apply --dry-run=client parses and maps every object', async (t) => {
  if (!hasKubectl) return t.skip('kubectl is not installed');
  for (const args of [[], ['--webhook-failure-policy', 'Fail', '--control-plane-replicas', '3']]) {
    const rendered = await runInstall(args);
    assert.equal(rendered.code, 0, rendered.stderr);
    const applied = await kubectl(
      ['apply', '--dry-run=client', '--validate=false', '-o', 'yaml', '-f', '-'],
      rendered.stdout,
    );
    assert.equal(applied.code, 0, applied.stderr);
    const list = parse(applied.stdout) as { kind: string; items: Array<Record<string, any>> };
    assert.equal(list.kind, 'List');
    const expected = parseObjects(rendered.stdout);
    assert.deepEqual(
      list.items.map((item) => `${item.kind}/${item.metadata.namespace ?? ''}/${item.metadata.name}`),
      expected.map((object) => `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`),
    );
    for (const [index, item] of list.items.entries()) {
      // What kubectl would send: our object, plus its last-applied record.
      const lastApplied = JSON.parse(
        item.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'],
      );
      delete lastApplied.metadata.annotations;
      const ours = structuredClone(expected[index]!);
      delete ours.metadata.annotations;
      assert.deepEqual(lastApplied, ours, `${item.kind} ${item.metadata.name} survives kubectl unchanged`);
    }
  }
});

test('kubectl delete --dry-run=client --ignore-not-found takes the same output (uninstall)', async (t) => {
  if (!hasKubectl) return t.skip('kubectl is not installed');
  const rendered = await runInstall([]);
  const deleted = await kubectl(
    ['delete', '--dry-run=client', '--ignore-not-found', '-f', '-'],
    rendered.stdout,
  );
  assert.equal(deleted.code, 0, deleted.stderr);
});
