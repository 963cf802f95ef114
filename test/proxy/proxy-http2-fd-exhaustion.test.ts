// The inbound out of file descriptors (prlimit --nofile=128, then 300 idle connections at its
// STRICT port) while an HTTP/2 stream needs a new connection to the app: the stream is answered
// 502 `local_resources`, as HTTP/1 requests and TCP connections are, not `app_unavailable` (the
// app was never asked), and served again once the clients have gone.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import {
  type ClientHttp2Session,
  connect as connectHttp2,
  createServer,
  type IncomingHttpHeaders,
} from 'node:http2';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  type ProxyProcess,
  readTlsCredentials,
  startProxyProcess,
} from '../../src/testing/mesh-pki.ts';

/** Polls `check` (a failure counts as false) for 25 s. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function flood(port: number, count: number): Socket[] {
  return Array.from({ length: count }, () => connect(port, '127.0.0.1').on('error', () => {}));
}

/** One GET on `session`: the answer's headers and body. */
function get(session: ClientHttp2Session): Promise<{ headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/', ':authority': 'emoji' });
    let headers: IncomingHttpHeaders = {};
    let body = '';
    stream.on('response', (answer) => {
      headers = answer;
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      body += chunk;
    });
    stream.on('end', () => resolve({ headers, body }));
    stream.on('error', reject);
  });
}

test('an HTTP/2 stream the inbound cannot pass to the app for want of descriptors is answered local_resources, not app_unavailable', {
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-fd-h2-'));
  // The app ends its session after each answer, so every stream needs a new connection from the sidecar.
  const app = createServer().on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.end('ok\n');
    stream.session?.close();
  });
  let server: ProxyProcess | undefined;
  let client: ClientHttp2Session | undefined;
  const held: Socket[] = [];
  try {
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const pki = await createTestPki(join(dir, 'pki'));
    const emoji = await pki.workload('emoji');
    const web = await pki.workload('web');
    const { key, cert, ca } = await readTlsCredentials(web);
    server = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--mode', 'STRICT'],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    await server.untilReady();
    const port = server.inbound[0]!.port;
    // A meshed client over mTLS straight at the inbound, its connection open before the flood.
    client = connectHttp2('http://emoji', {
      createConnection: () =>
        tlsConnect({ host: '127.0.0.1', port, key, cert, ca, checkServerIdentity: () => undefined }),
    });
    client.on('error', () => {});
    assert.equal(Number((await get(client)).headers[':status']), 200);

    const pid = server.child.pid!;
    execFileSync('prlimit', ['--pid', String(pid), '--nofile=128:128']);
    held.push(...flood(port, 300));
    await eventually(
      async () => readdirSync(`/proc/${pid}/fd`).length >= 127,
      'the server sidecar to run out',
    );
    const refused = await get(client);
    assert.equal(Number(refused.headers[':status']), 502, refused.body);
    assert.equal(refused.headers['x-mutual-proxy-error'], 'local_resources', refused.body);
    assert.match(refused.body, /EMFILE/);
    // The stream's 502 may reach the client before the session's error is logged.
    await eventually(
      async () =>
        /the sidecar could not connect to the app, for want of its own resources.*EMFILE/.test(
          server!.output(),
        ),
      'the log line naming EMFILE',
    );

    for (const socket of held) socket.destroy();
    await eventually(
      async () => Number((await get(client!)).headers[':status']) === 200,
      'the app to be reached again',
    );
  } finally {
    for (const socket of held) socket.destroy();
    client?.destroy();
    await server?.stop();
    app.close();
    await rm(dir, { recursive: true, force: true });
  }
});
