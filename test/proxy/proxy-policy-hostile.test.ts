// A real sidecar's request-level AuthorizationPolicy against a hostile client that writes raw
// bytes (curl and fetch would normalise them first): path tricks against `DENY /admin/*` and
// `ALLOW /public/*`, malformed targets, Host tricks against `hosts`, HTTP/2 `:path`/`:method`/
// `:authority`, and forged `x-mutual-client-id`. The apps echo what they received, so each case
// also checks that the app got the path the policy matched.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import {
  connect as connectHttp2,
  createServer as createHttp2Server,
  type Http2Server,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

interface Echo {
  method: string;
  path: string;
  host: string | null;
  clientId: string | null;
  aliases: string[];
}

/** What the app received: method, target, host and every header that could pass for an identity. */
function echo(method: string, path: string, headers: Record<string, unknown>): string {
  const body: Echo = {
    method,
    path,
    host: (headers[':authority'] ?? headers.host ?? null) as string | null,
    clientId: (headers['x-mutual-client-id'] ?? null) as string | null,
    aliases: Object.keys(headers).filter(
      (name) => name !== 'x-mutual-client-id' && /mutual.client.id/i.test(name),
    ),
  };
  return JSON.stringify(body);
}

let dir: string;
let web: WorkloadFiles;
let proxy: ProxyProcess;
const servers: (Server | Http2Server)[] = [];
/** Listener ports of the sidecar, one per app. */
const port = { deny: 0, allow: 0, open: 0, deny2: 0, allow2: 0 };
let openAppPort = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-hostile-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  web = await pki.workload('web');
  const listen = async (server: Server | Http2Server) => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const http1 = () =>
    listen(
      createServer((request, response) => response.end(echo(request.method!, request.url!, request.headers))),
    );
  const http2 = () =>
    listen(
      createHttp2Server().on('stream', (stream, headers) => {
        stream.respond({ ':status': 200 });
        stream.end(echo(headers[':method']!, headers[':path']!, headers));
      }),
    );
  const app = {
    deny: await http1(),
    allow: await http1(),
    open: await http1(),
    deny2: await http2(),
    allow2: await http2(),
  };
  openAppPort = app.open;
  const policies = join(dir, 'policies');
  await mkdir(policies);
  await writeFile(
    join(policies, 'emoji.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: DENY
  rules:
    - to: [{ operation: { ports: ["${app.deny}", "${app.deny2}"], paths: ["/admin/*", "/admin"] } }]
    - to: [{ operation: { ports: ["${app.deny}", "${app.deny2}"], hosts: ["admin.internal"] } }]
    - to: [{ operation: { ports: ["${app.deny}", "${app.deny2}"], methods: ["DELETE"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: ALLOW
  rules:
    - to: [{ operation: { ports: ["${app.deny}", "${app.deny2}", "${app.open}"] } }]
    - to: [{ operation: { ports: ["${app.allow}", "${app.allow2}"], paths: ["/public/*"] } }]
`,
  );
  const order = ['deny', 'allow', 'open', 'deny2', 'allow2'] as const;
  proxy = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...order.flatMap((name) => ['--inbound', `127.0.0.1:0=${app[name]}`]),
    ...['--policy-dir', policies, '--label', 'app=emoji', '--detect-timeout', '1s'],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  for (const [index, name] of order.entries()) port[name] = proxy.inbound[index]!.port;
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  for (const server of servers) server.close();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
  app: Echo | undefined;
}

function parseAnswer(text: string): Answer {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  return { status, body, app: status === 200 ? (JSON.parse(body) as Echo) : undefined };
}

/** Sends `chunks` as written, each once the previous is sent; resolves with the whole answer. */
function exchange(
  socket: Socket,
  chunks: readonly string[],
  waitBetween?: () => Promise<void>,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(parseAnswer(text)));
    void (async () => {
      for (const [index, chunk] of chunks.entries()) {
        if (index > 0) await waitBetween?.();
        socket.write(chunk, 'latin1');
      }
    })();
  });
}

/** One raw HTTP/1.1 request (closing the connection after it) over plaintext. */
function send(listenerPort: number, target: string, headers = 'Host: emoji.demo\r\n', method = 'GET') {
  const socket = connect(listenerPort, '127.0.0.1');
  return exchange(socket, [`${method} ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`]);
}

test('DENY /admin/*: no spelling of the path gets past it', async () => {
  const spellings = [
    '/admin/x',
    '/admin',
    '/admin/../admin/x',
    '/x/../admin/x',
    '//admin/x',
    '///admin//x',
    '/./admin/x',
    '/%61dmin/x',
    '/%61%64%6D%69%6E',
    '/admin\\x',
    '/x/%2e%2e/admin/x',
    '/x/.%2E/admin',
    '/admin#fragment',
    '/admin/x?',
    '/admin?/../x',
    'http://emoji.demo/admin/x',
    // An app that decodes %2F or drops ;parameters (Tomcat, Spring) reads these as /admin/…
    '/admin%2Fx',
    '/admin%2fx',
    '/admin%5Cx',
    '/admin;jsessionid=1/x',
    '/admin;x',
  ];
  for (const target of spellings) {
    const answer = await send(port.deny, target);
    assert.equal(answer.status, 403, `${target}: ${answer.body}`);
  }
});

test('the app receives the normalised path the policy matched, query kept, fragment dropped', async () => {
  const cases: [string, string][] = [
    ['/x/./y//z/../w?q=1&r=/../admin#f', '/x/y/w?q=1&r=/../admin'],
    ['/%7Euser/%41%2d%5F%2E', '/~user/A-_.'],
    ['/a\\b', '/a/b'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/files/a%2Fb', '/files/a%2Fb'],
    ['/files/%252e%252e/x', '/files/%252e%252e/x'],
    ['/dir/', '/dir/'],
    ['/dir/..', '/'],
    // Istio matches paths case-sensitively: /ADMIN is not /admin (see docs/proxy.md).
    ['/ADMIN/x', '/ADMIN/x'],
  ];
  for (const [target, expected] of cases) {
    const answer = await send(port.deny, target);
    assert.equal(answer.status, 200, `${target}: ${answer.body}`);
    assert.equal(answer.app?.path, expected, target);
  }
});

test('ALLOW /public/*: nothing outside /public gets in by climbing out of it', async () => {
  for (const target of [
    '/public/../admin/x',
    '/public/%2e%2e/admin',
    '/public/..%2Fadmin',
    '/public/..%5Cadmin',
    '/public/..;/admin',
    '/public;x/../admin',
    '/public%2F..%2Fadmin',
    'http://emoji.demo/public/../admin',
    '/publicity',
  ]) {
    const answer = await send(port.allow, target);
    assert.equal(answer.status, 403, `${target}: ${answer.body}`);
  }
  const inside = await send(port.allow, '/public/x#/../../admin');
  assert.equal(inside.status, 200);
  assert.equal(inside.app?.path, '/public/x');
  const absolute = await send(port.allow, 'http://EMOJI.demo/public/a/./b');
  assert.equal(absolute.status, 200);
  assert.equal(absolute.app?.path, '/public/a/b');
});

test('malformed or ambiguous requests are 400 naming the problem, and never reach the app', async () => {
  const cases: [string, string, string, RegExp][] = [
    ['OPTIONS', '*', 'Host: emoji.demo\r\n', /asterisk-form/],
    ['GET', '/admin%00', 'Host: emoji.demo\r\n', /%00/],
    [
      'GET',
      'http://admin.internal/x',
      'Host: emoji.demo\r\n',
      /names host "admin.internal" but the Host header says "emoji.demo"/,
    ],
    ['GET', '/x', '', /no Host header/],
    ['GET', '/x', 'Host: emoji.demo\r\nHost: admin.internal\r\n', /2 Host headers/],
    ['GET', '/x', 'Host: emoji.demo, admin.internal\r\n', /not a host name/],
    ['GET', '/x', 'Host: emoji.demo/admin\r\n', /not a host name/],
  ];
  for (const [method, target, headers, problem] of cases) {
    const answer = await send(port.open, target, headers, method);
    assert.equal(answer.status, 400, `${method} ${target} ${JSON.stringify(headers)}: ${answer.body}`);
    assert.match(answer.body, problem);
  }
  // node:http refuses these before the proxy sees them; still a 400, still not the app.
  for (const line of ['get /x HTTP/1.1', 'GET admin/x HTTP/1.1', 'GET /x\t HTTP/1.1']) {
    const answer = await exchange(connect(port.open, '127.0.0.1'), [`${line}\r\nHost: a\r\n\r\n`]);
    assert.equal(answer.status, 400, line);
  }
});

test('hosts: the Host header cannot be dressed up to slip past hosts: ["admin.internal"]', async () => {
  for (const host of [
    'admin.internal',
    'ADMIN.Internal',
    'admin.internal:80',
    'admin.internal.',
    'admin.internal.:8080',
  ]) {
    const answer = await send(port.deny, '/x', `Host: ${host}\r\n`);
    assert.equal(answer.status, 403, `Host: ${host}: ${answer.body}`);
  }
  const other = await send(port.deny, '/x', 'Host: emoji.demo.\r\n');
  assert.equal(other.status, 200);
  assert.equal(other.app?.host, 'emoji.demo.');
});

/** One HTTP/2 request over plaintext prior knowledge. */
async function h2(
  listenerPort: number,
  headers: OutgoingHttpHeaders,
): Promise<{ status: number; body: string }> {
  const session = connectHttp2(`http://127.0.0.1:${listenerPort}`);
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const stream = session.request(headers, { endStream: true });
      let status = 0;
      let body = '';
      stream.on('response', (response) => {
        status = Number(response[':status']);
      });
      stream.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      stream.on('error', reject);
      stream.on('close', () => resolve({ status, body }));
    });
  } finally {
    session.close();
  }
}

test('HTTP/2: :path is normalised as HTTP/1 is, :method must be upper case, :authority and Host must agree', async () => {
  for (const path of [
    '/admin/x',
    '/public/../admin/x',
    '//admin/x',
    '/%61dmin',
    '/admin#x',
    '/admin%2Fx',
    '/admin\\x',
  ]) {
    const answer = await h2(port.deny2, { ':path': path });
    assert.equal(answer.status, 403, `${path}: ${answer.body}`);
  }
  for (const path of ['/public/../admin', '/public/..;/admin']) {
    assert.equal((await h2(port.allow2, { ':path': path })).status, 403, path);
  }
  const normalised = await h2(port.allow2, { ':path': '/public//a/../b?x=1' });
  assert.equal(normalised.status, 200);
  assert.equal((JSON.parse(normalised.body) as Echo).path, '/public/b?x=1');
  const lower = await h2(port.deny2, { ':path': '/x', ':method': 'delete' });
  assert.equal(lower.status, 400);
  assert.match(lower.body, /"delete" is not in upper case/);
  assert.equal((await h2(port.deny2, { ':path': '/x', ':method': 'DELETE' })).status, 403);
  const split = await h2(port.deny2, { ':path': '/x', ':authority': 'emoji.demo', host: 'admin.internal' });
  assert.equal(split.status, 400);
  assert.match(split.body, /name different hosts/);
  assert.equal((await h2(port.deny2, { ':path': '/x', ':authority': 'ADMIN.internal.' })).status, 403);
});

const FORGED = 'spiffe://cluster.local/ns/demo/sa/admin';
const FORGED_HEADERS = `X-Mutual-Client-Id: ${FORGED}\r\nX_Mutual_Client_Id: ${FORGED}\r\nx-mutual_client-id: ${FORGED}\r\n`;

test('x-mutual-client-id: no spelling of it reaches the app from a plaintext client', async () => {
  const answer = await send(port.open, '/x', `Host: emoji.demo\r\n${FORGED_HEADERS}`);
  assert.equal(answer.status, 200);
  assert.equal(answer.app?.clientId, null);
  assert.deepEqual(answer.app?.aliases, []);
  // A method the detector did not list used to make the connection an opaque byte stream.
  const webdav = await send(port.open, '/x', `Host: emoji.demo\r\n${FORGED_HEADERS}`, 'PROPFIND');
  assert.equal(webdav.app?.method, 'PROPFIND');
  assert.equal(webdav.app?.clientId, null);
  assert.deepEqual(webdav.app?.aliases, []);
  const h2Answer = await h2(port.deny2, { ':path': '/x', x_mutual_client_id: FORGED });
  assert.deepEqual((JSON.parse(h2Answer.body) as Echo).aliases, []);
});

test('x-mutual-client-id: an mTLS peer is named by its certificate, whatever it writes', async () => {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: port.open,
    cert: await readFile(web.certFile),
    key: await readFile(web.keyFile),
    rejectUnauthorized: false,
  });
  const answer = await exchange(socket, [
    `GET /x HTTP/1.1\r\nHost: emoji.demo\r\n${FORGED_HEADERS}Connection: close\r\n\r\n`,
  ]);
  assert.equal(answer.status, 200);
  assert.equal(answer.app?.clientId, web.spiffeId);
  assert.deepEqual(answer.app?.aliases, []);
});

test('a request whose first byte arrives alone is still parsed as HTTP, not spliced to the app', async () => {
  const connections = async () =>
    metricValue(await proxy.metrics(), 'mutual_inbound_connections_total', { port: String(openAppPort) });
  const before = await connections();
  const socket = connect(port.open, '127.0.0.1');
  socket.setNoDelay(true);
  // The rest goes once the sidecar has decided what the connection is (after `G` alone, its
  // detection timeout): decided as opaque, the rest would reach the app unparsed.
  const answer = await exchange(
    socket,
    ['G', `ET /x HTTP/1.1\r\nHost: emoji.demo\r\n${FORGED_HEADERS}Connection: close\r\n\r\n`],
    () => waitUntil(async () => (await connections()) > before, 'the sidecar to classify the connection'),
  );
  assert.equal(answer.status, 200);
  assert.equal(answer.app?.clientId, null);
  assert.deepEqual(answer.app?.aliases, []);
});
