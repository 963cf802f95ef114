// `mutual inject` on a large file (docs: up to 64 MiB is read), the real binary: its memory must not
// grow with the parsed documents all held at once. A 63 MB Helm-style file of Deployments and
// Services made it hit V8's heap limit (4 GB) and die with "JavaScript heap out of memory" after
// two minutes (and, once it did fit, its 700 MB output did not fit one JavaScript string: "Invalid
// string length"); here the same shape, 1.5 MB, must be injected within a 128 MB heap, which
// holding every parsed document needed about twice of, and its output written whole in chunks.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { repoRoot } from '../e2e/run-mutual.ts';
import { INJECT_ANCHORS_FILE } from './inject-harness.ts';

/** `helm template` output: a Deployment with a named-port probe and its Service, `count` times. */
function chartOutput(count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) {
    text += `# Source: chart/templates/d${i}.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d${i}
spec:
  selector:
    matchLabels: {app: d${i}}
  template:
    metadata:
      labels: {app: d${i}}
    spec:
      containers:
      - name: app
        image: nginx
        ports:
        - containerPort: 80
          name: http
        readinessProbe:
          httpGet: {path: /, port: http}
---
apiVersion: v1
kind: Service
metadata: {name: d${i}}
spec:
  ports: [{port: 80, targetPort: http}]
  selector: {app: d${i}}
---
`;
  }
  return text;
}

test('3,000 Deployments and their Services (1.5 MB) are injected within a 128 MB heap: documents are parsed and let go one at a time', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-large-'));
  try {
    const input = join(dir, 'chart.yaml');
    await writeFile(input, chartOutput(3000));
    const output = await open(join(dir, 'out.yaml'), 'w');
    const child = spawn(
      process.execPath,
      [join(repoRoot(), 'bin', 'mutual.js'), 'inject', '--trust-anchors-file', INJECT_ANCHORS_FILE, input],
      {
        env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=128' },
        stdio: ['ignore', output.fd, 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    await output.close();
    assert.doesNotMatch(stderr, /heap out of memory/);
    assert.equal(code, 0, stderr.slice(0, 2000));
    assert.equal(stderr.match(/: injected$/gm)?.length, 3000);
    assert.match(stderr, /^deployment\/d2999 \(.*chart\.yaml:83982\): injected$/m);
    // Written in chunks (17 MB here: two): all of it, in order, to the last Service.
    const printed = await readFile(join(dir, 'out.yaml'), 'utf8');
    assert.ok(printed.length > 17_000_000, String(printed.length));
    assert.equal(printed.match(/^kind: Deployment$/gm)?.length, 3000);
    assert.ok(printed.startsWith('# Source: chart/templates/d0.yaml\napiVersion: apps/v1\n'));
    assert.ok(
      printed.endsWith(
        'metadata: {name: d2999}\nspec:\n  ports: [{port: 80, targetPort: http}]\n  selector: {app: d2999}\n---\n',
      ),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
