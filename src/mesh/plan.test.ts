// The identity service's rate burst, sized for services that share one identity: their sidecars
// all certify at once when the mesh starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMeshConfig } from './mesh-config.ts';
import { planMesh, portsNeeded } from './plan.ts';
import { meshPaths } from './runtime.ts';

/** mesh.yaml with `count` services, `shared` of them on service account `shared`. */
function meshText(count: number, shared: number): string {
  const services = Array.from({ length: count }, (_, at) => [
    `  - name: s${at}`,
    '    namespace: scale',
    ...(at < shared ? ['    serviceAccount: shared'] : []),
    '    command: [node, app.mjs]',
    '    ports: [8080]',
  ]).flat();
  return ['services:', ...services, ''].join('\n');
}

function identityArgv(count: number, shared: number): readonly string[] {
  const config = parseMeshConfig(meshText(count, shared), '/scale/mesh.yaml');
  const ports = Array.from({ length: portsNeeded(config) }, (_, at) => 20_000 + at);
  return planMesh({
    config,
    paths: meshPaths('/state'),
    ports,
    nodePath: 'node',
    mutualBin: 'mutual.js',
    baseEnv: {},
  }).identity.argv;
}

const burstOf = (argv: readonly string[]) =>
  argv.includes('--rate-burst') ? argv[argv.indexOf('--rate-burst') + 1] : undefined;

test('services sharing a service account: a burst for twice their sidecars', () => {
  assert.equal(burstOf(identityArgv(40, 40)), '80');
  assert.equal(burstOf(identityArgv(30, 12)), '24');
});

test("each service its own account, or a few sharing one: the identity service's default", () => {
  assert.equal(burstOf(identityArgv(40, 0)), undefined);
  assert.equal(burstOf(identityArgv(12, 10)), undefined);
});
