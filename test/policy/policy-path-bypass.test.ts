// Can a request reach a denied path or host by spelling it differently? A real sidecar in front of
// three apps that read paths their own way (node:http echoing the target it got, python3
// http.server and nginx serving files), with DENY paths ["/admin*"] + hosts ["admin.internal"] and
// an ALLOW-list paths ["/public/*"]. Each spelling is sent as raw bytes; the answer must be what
// Istio's sidecar (Envoy, pathNormalization MERGE_SLASHES) gives, no app may serve a secret file
// past the policy, and `mutual policy explain` must decide every spelling as the sidecar does.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import { rawTcp } from '../e2e/plain-http-client.ts';
import { runMutual } from '../e2e/run-mutual.ts';

const hasNginx = spawnSync('nginx', ['-v']).status === 0;
const SECRET = 'SECRET-FILE';

type App = 'node' | 'python' | 'nginx';
interface Listener {
  app: App;
  /** The app's own port (policies name it), and the sidecar's listener in front of it. */
  appPort: number;
  port: number;
}

let dir: string;
let policyDir: string;
let proxy: ProxyProcess;
const servers: Server[] = [];
const children: ChildProcess[] = [];
const listeners: { deny: Listener[]; allow: Listener[] } = { deny: [], allow: [] };

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** python3 http.server on port 0, serving `root`; resolves with the port it printed. */
async function startPython(root: string): Promise<number> {
  const child = spawn(
    'python3',
    ['-u', '-m', 'http.server', '--bind', '127.0.0.1', '0', '--directory', root],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  await waitUntil(async () => / port (\d+)/.test(output), 'python3 http.server to listen');
  return Number(/ port (\d+)/.exec(output)![1]);
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function isListening(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** nginx (one process, as this user) serving `root` on two ports. */
async function startNginx(root: string): Promise<[number, number]> {
  const ports: [number, number] = [await freePort(), await freePort()];
  const conf = join(dir, 'nginx.conf');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
    (name) => `${name}_temp_path ${dir};`,
  );
  await writeFile(
    conf,
    `daemon off; master_process off; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events {}
http { access_log off; ${temp.join(' ')}
  server { listen 127.0.0.1:${ports[0]}; listen 127.0.0.1:${ports[1]}; root ${root}; }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
  children.push(child);
  await waitUntil(
    async () => (await isListening(ports[0])) && (await isListening(ports[1])),
    'nginx to listen',
  );
  return ports;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-path-bypass-'));
  const root = join(dir, 'www');
  for (const folder of ['admin', 'secret', 'public']) await mkdir(join(root, folder), { recursive: true });
  await writeFile(join(root, 'admin', 'index.html'), SECRET);
  await writeFile(join(root, 'admin', 'x'), SECRET);
  await writeFile(join(root, 'secret', 'x'), SECRET);
  await writeFile(join(root, 'public', 'x'), 'public');
  const echo = () =>
    listen(createServer((request, response) => response.end(JSON.stringify({ path: request.url }))));
  const apps: [App, number, number][] = [
    ['node', await echo(), await echo()],
    ['python', await startPython(root), await startPython(root)],
  ];
  if (hasNginx) apps.push(['nginx', ...(await startNginx(root))]);
  const pki = await createTestPki(join(dir, 'pki'));
  const web = await pki.workload('web');
  policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  const denyPorts = apps.map(([, port]) => `"${port}"`).join(', ');
  const allowPorts = apps.map(([, , port]) => `"${port}"`).join(', ');
  await writeFile(
    join(policyDir, 'web.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: demo }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin*"] } }]
    - to: [{ operation: { hosts: ["admin.internal"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow, namespace: demo }
spec:
  rules:
    - to: [{ operation: { ports: [${denyPorts}] } }]
    - to: [{ operation: { ports: [${allowPorts}], paths: ["/public/*"] } }]
`,
  );
  const order = [...apps.map(([, port]) => port), ...apps.map(([, , port]) => port)];
  proxy = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...order.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...['--policy-dir', policyDir, '--label', 'app=web', '--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
  apps.forEach(([app, deny, allow], i) => {
    listeners.deny.push({ app, appPort: deny, port: proxy.inbound[i]!.port });
    listeners.allow.push({ app, appPort: allow, port: proxy.inbound[apps.length + i]!.port });
  });
});

after(async () => {
  await proxy?.stop();
  for (const server of servers) server.close();
  for (const child of children) child.kill();
  await rm(dir, { recursive: true, force: true });
});

interface Spelling {
  method?: string;
  target: string;
  host?: string;
  /** The sidecar's status: 403 (policy), 400 (refused unread), or 'app' (forwarded). */
  expected: 403 | 400 | 'app';
  /** For 'app': the path the node:http app must receive. */
  received?: string;
}

interface Answer {
  status: number;
  body: string;
}

async function send(port: number, { method = 'GET', target, host }: Spelling): Promise<Answer> {
  const hostHeader = host ?? /^https?:\/\/([^/]+)/.exec(target)?.[1] ?? 'web.demo';
  const raw = await rawTcp(
    port,
    '127.0.0.1',
    Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: close\r\n\r\n`, 'latin1'),
  );
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0),
    body: raw.split('\r\n\r\n').slice(1).join(''),
  };
}

/** `mutual policy explain` for one spelling, as a user types it: 403, 400 (refused) or 'app'. */
async function explain(appPort: number, { method, target, host }: Spelling): Promise<403 | 400 | 'app'> {
  const run = await runMutual([
    ...['policy', 'explain', '--policy-dir', policyDir, '--to', 'demo/web', '--plaintext'],
    ...['--port', String(appPort), '--path', target, '-o', 'json'],
    ...(method === undefined ? [] : ['--method', method]),
    ...(host === undefined ? [] : ['--host', host]),
  ]);
  if (run.code !== 0) {
    assert.match(run.stderr, /MUTUAL_CLI_USAGE.*400/, `${target}: ${run.stderr}`);
    return 400;
  }
  return (JSON.parse(run.stdout) as { decision: { allowed: boolean } }).decision.allowed ? 'app' : 403;
}

async function check(mode: 'deny' | 'allow', spellings: readonly Spelling[]): Promise<void> {
  for (const spelling of spellings) {
    const name = `${spelling.method ?? 'GET'} ${spelling.target}${spelling.host ? ` (Host ${spelling.host})` : ''}`;
    for (const listener of listeners[mode]) {
      const answer = await send(listener.port, spelling);
      assert.doesNotMatch(
        answer.body,
        new RegExp(SECRET),
        `${listener.app} served a secret file for ${name}`,
      );
      if (spelling.expected === 'app') {
        assert.ok(
          ![400, 403].includes(answer.status),
          `${listener.app} ${name}: ${answer.status} ${answer.body}`,
        );
        if (listener.app === 'node' && spelling.method !== 'HEAD') {
          assert.equal(JSON.parse(answer.body).path, spelling.received ?? spelling.target, name);
        }
      } else {
        assert.equal(answer.status, spelling.expected, `${listener.app} ${name}: ${answer.body}`);
      }
    }
    assert.equal(await explain(listeners[mode][0]!.appPort, spelling), spelling.expected, `explain ${name}`);
  }
}

test('DENY paths ["/admin*"]: every spelling of /admin is denied, and explain agrees', async () => {
  const denied = [
    '/admin',
    '/admin/',
    '/admin/x',
    '//admin/x',
    '/./admin/x',
    '/a/../admin/x',
    '/%2e/admin/x',
    '/.%2e/admin/x',
    '/%61dmin/x',
    '/adm%69n/x',
    '/admin%2Fx',
    '/%2Fadmin/x',
    '/admin\\x',
    '/admin;param',
    '/;x/admin/x',
    '/admin?x',
    '/admin#x',
    '/public/..%2fadmin/x',
    '/public%2f..%2fadmin/x',
    '/public/..%5cadmin/x',
    'http://web.demo/admin/x',
  ];
  await check('deny', [
    ...denied.map((target): Spelling => ({ target, expected: 403 })),
    { method: 'HEAD', target: '/admin/x', expected: 403 },
    { method: 'POST', target: '/admin/x', expected: 403 },
    // Istio matches paths case-sensitively and decodes %25 never: not /admin to it, nor to these apps.
    { target: '/ADMIN/x', expected: 'app' },
    { target: '/%2561dmin/x', expected: 'app' },
    { target: '/public/x/../../x', expected: 'app', received: '/x' },
  ]);
});

test('DENY hosts ["admin.internal"]: every spelling of the host is denied, and explain agrees', async () => {
  await check('deny', [
    ...['admin.internal', 'ADMIN.Internal', 'admin.internal.', 'admin.internal:80'].map(
      (host): Spelling => ({ target: '/x', host, expected: 403 }),
    ),
    { target: 'http://admin.internal/x', expected: 403 },
    { target: 'http://ADMIN.INTERNAL/x', expected: 403 },
    { target: '/x', host: '[::1]:80', expected: 'app' },
  ]);
});

test('what the sidecar cannot read as one request is 400 before policy, and explain says so', async () => {
  await check('deny', [
    { method: 'get', target: '/admin/x', expected: 400 },
    { method: 'get', target: '/x', expected: 400 },
    { target: '/admin%00', expected: 400 },
    { method: 'OPTIONS', target: '*', expected: 400 },
    { target: 'http://admin.internal/x', host: 'web.demo', expected: 400 },
    { target: '/x', host: 'web.demo, admin.internal', expected: 400 },
  ]);
});

test('ALLOW paths ["/public/*"]: no spelling climbs out of /public, and explain agrees', async () => {
  const denied = [
    '/secret/x',
    '/public/../secret/x',
    '/public/%2e%2e/secret/x',
    '/public/..%2fsecret/x',
    '/public/..%2Fsecret/x',
    '/public/..%5csecret/x',
    '/public/..;/secret/x',
    '/public;x/../secret/x',
    '/public%2f..%2fsecret/x',
    '/public/..\\secret\\x',
    '/publicity',
    '/PUBLIC/x',
    'http://web.demo/public/../secret/x',
  ];
  await check('allow', [
    ...denied.map((target): Spelling => ({ target, expected: 403 })),
    { target: '/public/x', expected: 'app' },
    { target: '/public/./x', expected: 'app', received: '/public/x' },
    { target: '//public//x', expected: 'app', received: '/public/x' },
    { target: '/%70ublic/x', expected: 'app', received: '/public/x' },
    { target: '/public/x#/../../secret/x', expected: 'app', received: '/public/x' },
    { method: 'HEAD', target: '/public/x', expected: 'app' },
  ]);
});
