// ALPN at the inbound, as clients that hold their own SVID see it with openssl s_client: h2 for a
// client that speaks only HTTP/2 (every gRPC stack refuses a server that selects nothing), HTTP/1.1
// whenever it is offered, the client's own first choice otherwise, and nothing for a client that
// offers none (peer proxies). Each answer is checked by a request that reaches the app.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

let dir: string;
let web: WorkloadFiles;
let proxy: ProxyProcess;
let app: Server;
let app2: Http2Server;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-alpn-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  web = await pki.workload('web');
  app = createServer((request, response) => {
    response.end(`h1 app, client ${request.headers['x-mutual-client-id']}\n`);
  });
  app2 = createHttp2Server((request, response) => {
    response.end(`h2 app, client ${request.headers['x-mutual-client-id']}\n`);
  });
  await Promise.all([
    once(app.listen(0, '127.0.0.1'), 'listening'),
    once(app2.listen(0, '127.0.0.1'), 'listening'),
  ]);
  proxy = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
    ...['--inbound', `127.0.0.1:0=${(app2.address() as AddressInfo).port}`],
    ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  app?.close();
  app2?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * openssl s_client with web's SVID, offering `alpn` (if any), writing `input`; all it printed when
 * it ends, or as soon as it printed `until` (an HTTP/2 connection stays open).
 */
function sClient(port: number, alpn: string | undefined, input: string, until?: RegExp): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-ign_eof'];
  args.push(
    '-cert',
    web.certFile,
    '-cert_chain',
    web.certFile,
    '-key',
    web.keyFile,
    '-CAfile',
    web.bundleFile,
  );
  if (alpn) args.push('-alpn', alpn);
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('latin1');
    if (until?.test(out)) child.kill();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out += chunk.toString('latin1');
  });
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill(), 8_000);
  return new Promise((resolve) =>
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    }),
  );
}

const GET = 'GET / HTTP/1.1\r\nHost: emoji\r\nConnection: close\r\n\r\n';

test('a client offering h2 and HTTP/1.1 gets HTTP/1.1, and its request reaches an HTTP/1 app', async () => {
  const out = await sClient(proxy.inbound[0]!.port, 'h2,http/1.1', GET);
  assert.match(out, /ALPN protocol: http\/1\.1/);
  assert.match(out, new RegExp(`h1 app, client ${web.spiffeId}`));
});

test('a client offering only h2 gets h2, and its HTTP/2 request reaches an HTTP/2 app', async () => {
  // One GET on stream 1, frames by hand: preface, empty SETTINGS, HEADERS (literal, not indexed).
  const header = (name: string, value: string) =>
    Buffer.concat([
      Buffer.from([0x00, name.length]),
      Buffer.from(name),
      Buffer.from([value.length]),
      Buffer.from(value),
    ]);
  const block = Buffer.concat([
    header(':method', 'GET'),
    header(':path', '/'),
    header(':scheme', 'https'),
    header(':authority', 'emoji'),
  ]);
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    return Buffer.concat([head, payload]);
  };
  const request = Buffer.concat([
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    frame(0x4, 0, 0, Buffer.alloc(0)),
    frame(0x1, 0x5, 1, block), // END_STREAM | END_HEADERS
  ]);
  const answer = new RegExp(`h2 app, client ${web.spiffeId}`);
  const out = await sClient(proxy.inbound[1]!.port, 'h2', request.toString('latin1'), answer);
  assert.match(out, /ALPN protocol: h2/);
  // The answer's DATA frame carries the body in the clear (HPACK compresses only headers).
  assert.match(out, answer);
});

test('a client offering neither gets its own first choice; one offering none gets none', async () => {
  const other = await sClient(proxy.inbound[0]!.port, 'postgresql,redis', GET);
  assert.match(other, /ALPN protocol: postgresql/);
  assert.match(other, /h1 app, client/);
  const none = await sClient(proxy.inbound[0]!.port, undefined, GET);
  assert.match(none, /No ALPN negotiated/);
  assert.match(none, new RegExp(`h1 app, client ${web.spiffeId}`));
});
