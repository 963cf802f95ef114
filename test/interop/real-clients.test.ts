// Clients nobody on this project wrote, used as their users would, against a real sidecar pair:
// Go's net/http and crypto/tls (test/interop/fixtures/real_clients.go, built here), Python's httpx
// (HTTP/2 too), requests and websockets (test/interop/fixtures/real_clients.py), wget, curl and
// openssl s_client. Each client holding its own SVID calls the STRICT inbound straight (the app
// must see its identity), then in plain text through the client sidecar's explicit upstream:
// 50 MB each way, chunked uploads, Expect: 100-continue, HEAD, keep-alive reuse, WebSocket echo,
// HTTP/2 with prior knowledge. A client that is not installed is skipped, naming its Debian package.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);
/** Debian's python3, where python3-httpx and friends install (not a pyenv one on PATH). */
const PYTHON = '/usr/bin/python3';

function works(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}
const needs = (ok: boolean, what: string) => (ok ? false : `needs ${what}`);
const python = (module: string) => works(PYTHON, ['-c', `import ${module}`]);
const skipGo = needs(works('go', ['version']), 'go (apt-get install golang-go)');
const skipHttpx = needs(
  python('httpx, h2'),
  `${PYTHON} with httpx and h2 (apt-get install python3-httpx python3-h2)`,
);
const skipRequests = needs(python('requests'), `${PYTHON} with requests (apt-get install python3-requests)`);
const skipWebsockets = needs(
  python('websockets'),
  `${PYTHON} with websockets (apt-get install python3-websockets)`,
);
const skipWget = needs(works('wget', ['--version']), 'wget (apt-get install wget)');
const skipCurl = needs(works('curl', ['--version']), 'curl (apt-get install curl)');
const skipOpenssl = needs(works('openssl', ['version']), 'openssl (apt-get install openssl)');

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const FIXTURES = join(repoRoot(), 'test', 'interop', 'fixtures');

/** Bodies the apps answer for ?size=N: this 64 KiB pattern over and over. */
const PATTERN = randomBytes(65_536);
const LARGE = 50_000_000;
function patternDigest(size: number): string {
  const hash = createHash('sha256');
  for (let left = size; left > 0; left -= PATTERN.length)
    hash.update(PATTERN.subarray(0, Math.min(left, PATTERN.length)));
  return hash.digest('hex');
}
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

let dir: string;
let web: WorkloadFiles;
let emoji: WorkloadFiles;
let server: ProxyProcess;
let client: ProxyProcess;
let http1: Server;
let http2: Http2Server;
let goClient: string | undefined;
/** The identity each WebSocket upgrade reached the app with, by path. */
const upgrades = new Map<string, string | undefined>();

/** What the app tells about a request it read whole: the client sees it in the body. */
function summary(method: string, path: string, bytes: number, digest: string, id: unknown): string {
  return `${method} ${path} got=${bytes} sha=${digest} id=${id}\n`;
}

/** Answers ?size=N with N bytes of PATTERN, and anything else by describing the request. */
function answer(
  request: Readable & { method?: string; url?: string; headers: Record<string, unknown> },
  respond: (headers: Record<string, string | number>, body: string | number) => void,
): void {
  const hash = createHash('sha256');
  let bytes = 0;
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    hash.update(chunk);
  });
  request.on('end', () => {
    const url = new URL(request.url ?? '/', 'http://app');
    const size = Number(url.searchParams.get('size') ?? 0);
    if (size) return respond({ 'content-length': size }, size);
    const line = summary(
      request.method ?? '',
      url.pathname,
      bytes,
      hash.digest('hex'),
      request.headers['x-mutual-client-id'],
    );
    respond({ 'content-type': 'text/plain', 'content-length': Buffer.byteLength(line) }, line);
  });
}

/** Writes `size` bytes of PATTERN, minding backpressure. */
function writePattern(out: NodeJS.WritableStream & { end(): unknown }, size: number): void {
  let left = size;
  const pump = () => {
    while (left > 0) {
      const piece = PATTERN.subarray(0, Math.min(left, PATTERN.length));
      left -= piece.length;
      if (!out.write(piece)) return void out.once('drain', pump);
    }
    out.end();
  };
  pump();
}

/** A WebSocket echo (RFC 6455): text and binary frames back unmasked, pings ponged, close echoed. */
function echoWebSocket(request: IncomingMessage, socket: Socket, head: Buffer): void {
  upgrades.set(request.url ?? '', request.headers['x-mutual-client-id'] as string | undefined);
  const accept = createHash('sha1')
    .update(`${request.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let buffer = head;
  const frame = (opcode: number, payload: Buffer) => {
    const length = payload.length;
    const header =
      length < 126
        ? Buffer.from([0x80 | opcode, length])
        : length < 65_536
          ? Buffer.from([0x80 | opcode, 126, length >> 8, length & 255])
          : Buffer.concat([Buffer.from([0x80 | opcode, 127]), Buffer.alloc(8)]);
    if (length >= 65_536) header.writeBigUInt64BE(BigInt(length), 2);
    return Buffer.concat([header, payload]);
  };
  socket.on('data', (data: Buffer) => {
    buffer = Buffer.concat([buffer, data]);
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0]! & 15;
      let length = buffer[1]! & 127;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffer.length < offset + 4 + length) return;
      const mask = buffer.subarray(offset, offset + 4);
      const payload = Buffer.from(buffer.subarray(offset + 4, offset + 4 + length));
      buffer = buffer.subarray(offset + 4 + length);
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      if (opcode === 8) return void socket.end(frame(8, payload));
      socket.write(frame(opcode === 9 ? 10 : opcode, payload));
    }
  });
}

async function listen(app: Server | Http2Server): Promise<number> {
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  return (app.address() as AddressInfo).port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-real-clients-'));
  const pki = await createTestPki(join(dir, 'pki'));
  emoji = await pki.workload('emoji');
  web = await pki.workload('web');
  http1 = createServer((request, response) =>
    answer(request, (headers, body) => {
      response.writeHead(200, headers);
      typeof body === 'number' ? writePattern(response, body) : response.end(body);
    }),
  );
  http1.on('upgrade', echoWebSocket);
  http2 = createHttp2Server((request, response) =>
    answer(request, (headers, body) => {
      response.writeHead(200, headers);
      typeof body === 'number' ? writePattern(response, body) : response.end(body);
    }),
  );
  const [port1, port2] = [await listen(http1), await listen(http2)];
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${port1}`, '--inbound', `127.0.0.1:0=${port2}`],
    ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
  ]);
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[1]!.port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  if (!skipGo) {
    goClient = join(dir, 'real-clients-go');
    // Standard library only: offline, no module download, a cache of its own.
    await run('go', ['build', '-o', goClient, join(FIXTURES, 'real_clients.go')], {
      cwd: dir,
      env: {
        ...process.env,
        GOFLAGS: '-mod=mod',
        GOPROXY: 'off',
        GOCACHE: join(dir, 'go-cache'),
        GO111MODULE: 'on',
      },
    });
  }
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  for (const app of [http1, http2]) {
    app?.close();
    (app as Server | undefined)?.closeAllConnections?.();
  }
  await rm(dir, { recursive: true, force: true });
});

/** Straight to the inbound (mTLS), in front of the HTTP/1 app and the HTTP/2 app. */
const inbound1 = () => `https://127.0.0.1:${server.inbound[0]!.port}`;
const inbound2 = () => `https://127.0.0.1:${server.inbound[1]!.port}`;
/** Plain text to the client sidecar's explicit upstreams. */
const upstream1 = () => `http://127.0.0.1:${client.outbound[0]!.port}`;
const upstream2 = () => `http://127.0.0.1:${client.outbound[1]!.port}`;
const svid = () => ({ cert: web.certFile, key: web.keyFile, bundle: web.bundleFile });
const said = (method: string, path: string, body: Buffer | string) =>
  summary(method, path, Buffer.byteLength(body), sha(body), web.spiffeId);
const saidEmpty = (method: string, path: string) => said(method, path, '');

/** What real_clients.py's chunks(1_000_000) uploads: bytes 0..255 over and over. */
const PYTHON_CHUNKED = Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => i & 255));

async function runPython(name: string, args: object): Promise<Record<string, any>> {
  const { stdout } = await run(PYTHON, [join(FIXTURES, 'real_clients.py'), name, JSON.stringify(args)], {
    timeout: 30_000,
  });
  return JSON.parse(stdout);
}

test('Go net/http and crypto/tls with their own SVID straight to the inbound: served, identity seen', {
  skip: skipGo,
}, async () => {
  const { stdout } = await run(goClient!, [
    'direct',
    inbound1(),
    web.certFile,
    web.keyFile,
    web.bundleFile,
    emoji.spiffeId,
  ]);
  const result = JSON.parse(stdout);
  // ForceAttemptHTTP2 offers h2 and http/1.1; the inbound picks HTTP/1.1.
  assert.deepEqual(
    [result.proto, result.status, result.body],
    ['HTTP/1.1', 200, saidEmpty('GET', '/go-direct')],
  );
  assert.equal(result.tls13, true);
  assert.match(result.raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(result.raw.endsWith(saidEmpty('GET', '/go-tls')), result.raw);
});

test('Go net/http through the upstream: 50 MB each way, chunked, 100-continue, HEAD, one kept-alive connection', {
  skip: skipGo,
}, async () => {
  const { stdout } = await run(goClient!, ['plain', upstream1(), String(LARGE)], { timeout: 30_000 });
  const result = JSON.parse(stdout);
  assert.deepEqual(result.down, [200, LARGE, patternDigest(LARGE)]);
  const upload = Buffer.from('0123456789'.repeat(LARGE / 10));
  assert.equal(result.up, said('PUT', '/go-up', upload));
  assert.equal(
    result.chunked,
    said('POST', '/go-chunked', Buffer.concat([upload.subarray(0, 1_000_000), Buffer.from('tail')])),
  );
  // The client sidecar answers 100 Continue itself (docs/proxy.md), and the body arrives whole.
  assert.equal(result.continued, true);
  assert.equal(result.expect, said('POST', '/go-expect', upload.subarray(0, 300_000)));
  assert.deepEqual(result.head, [200, 12345, 0]);
  assert.equal(result.reused, 4, 'every request after the first reused the connection');
});

test('httpx with its own SVID straight to the inbound: HTTP/1.1 when both are offered, HTTP/2 when h2 alone', {
  skip: skipHttpx,
}, async () => {
  const result = await runPython('httpx_direct', { ...svid(), h1: inbound1(), h2: inbound2() });
  assert.deepEqual(result.both, ['HTTP/1.1', 200, said('POST', '/httpx-direct', 'x'.repeat(100_000))]);
  assert.deepEqual(result.h2, ['HTTP/2', 200, said('POST', '/httpx-h2-direct', 'y'.repeat(70_000))]);
});

test('httpx through the upstreams: HTTP/2 prior knowledge, 50 MB streamed down, a chunked upload, HEAD', {
  skip: skipHttpx,
}, async () => {
  const result = await runPython('httpx_plain', { h1: upstream1(), h2: upstream2(), size: LARGE });
  assert.deepEqual(
    result.h2,
    [0, 1, 2].map((i) => ['HTTP/2', 200, said('POST', `/httpx-h2c-${i}`, Buffer.alloc(1_000_000, i))]),
  );
  assert.deepEqual(result.down, [200, LARGE, patternDigest(LARGE)]);
  assert.equal(result.chunked, said('POST', '/httpx-chunked', PYTHON_CHUNKED));
  assert.deepEqual(result.head, [200, '777', 0]);
});

test('requests: with its own SVID straight to the inbound, then chunked, 100-continue, HEAD and keep-alive through the upstream', {
  skip: skipRequests,
}, async () => {
  const direct = await runPython('requests_direct', { ...svid(), h1: inbound1() });
  assert.deepEqual(direct, { status: 200, body: saidEmpty('GET', '/requests-direct') });
  const plain = await runPython('requests_plain', { h1: upstream1() });
  assert.equal(plain.chunked, said('POST', '/requests-chunked', PYTHON_CHUNKED));
  assert.deepEqual(plain.expect, [200, said('POST', '/requests-expect', 'e'.repeat(300_000))]);
  assert.deepEqual(plain.head, [200, '99', 0]);
  assert.equal(plain.connections, 1, 'eight requests on one connection');
});

test('websockets: echo through the upstream (text, 1 MB binary, ping, 100 in order) and wss straight to the inbound', {
  skip: skipWebsockets,
}, async () => {
  const result = await runPython('websockets_both', {
    ...svid(),
    ws: upstream1().replace('http:', 'ws:'),
    wss: inbound1().replace('https:', 'wss:'),
  });
  assert.deepEqual(result, {
    text: 'hello',
    binary: true,
    pong: true,
    ordered: true,
    close_code: 1000,
    direct: 'direct',
  });
  assert.equal(upgrades.get('/ws-plain'), web.spiffeId);
  assert.equal(upgrades.get('/ws-direct'), web.spiffeId);
});

test('wget: with --certificate straight to the inbound; POST and --spider (HEAD) through the upstream', {
  skip: skipWget,
}, async () => {
  const direct = await run('wget', [
    ...['-q', '-T', '10', '-t', '1', '-O', '-', '--no-check-certificate'],
    ...['--certificate', web.certFile, '--private-key', web.keyFile, `${inbound1()}/wget-direct`],
  ]);
  assert.equal(direct.stdout, saidEmpty('GET', '/wget-direct'));
  const post = await run('wget', [
    '-q',
    '-T',
    '10',
    '-t',
    '1',
    '-O',
    '-',
    '--post-data=a=1',
    `${upstream1()}/wget-post`,
  ]);
  assert.equal(post.stdout, said('POST', '/wget-post', 'a=1'));
  const spider = await run('wget', [
    '-S',
    '--spider',
    '-T',
    '10',
    '-t',
    '1',
    `${upstream1()}/wget-head?size=4321`,
  ]);
  assert.match(spider.stderr, /HTTP\/1\.1 200 OK/);
  assert.match(spider.stderr, /Length: 4321/);
});

test('curl: --http2 and --http1.0 with --cert straight to the inbound; 50 MB each way over HTTP/2 prior knowledge; 100-continue', {
  skip: skipCurl,
}, async () => {
  const mtls = [
    '-sS',
    '-m',
    '10',
    '-k',
    '--cert',
    web.certFile,
    '--key',
    web.keyFile,
    '-w',
    ' %{http_version}',
  ];
  const h2 = await run('curl', [...mtls, '--http2', `${inbound1()}/curl-h2`]);
  assert.equal(h2.stdout, `${saidEmpty('GET', '/curl-h2')} 1.1`);
  const h10 = await run('curl', [...mtls, '--http1.0', `${inbound1()}/curl-h10`]);
  assert.equal(h10.stdout, `${saidEmpty('GET', '/curl-h10')} 1.1`);

  const file = join(dir, 'large.bin');
  const upload = randomBytes(LARGE);
  await writeFile(file, upload);
  const up = await run('curl', [
    '-sS',
    '-m',
    '20',
    '--http2-prior-knowledge',
    '-T',
    file,
    `${upstream2()}/curl-up`,
  ]);
  assert.equal(up.stdout, said('PUT', '/curl-up', upload));
  const down = await run('curl', [
    ...['-sS', '-m', '20', '--http2-prior-knowledge', '-o', file, '-w', '%{http_code} %{http_version}'],
    `${upstream2()}/curl-down?size=${LARGE}`,
  ]);
  assert.equal(down.stdout, '200 2');
  assert.equal(sha(await readFile(file)), patternDigest(LARGE));

  const small = upload.subarray(0, 2_000_000);
  await writeFile(file, small);
  const expect = await run('curl', [
    ...['-sS', '-v', '-m', '10', '-H', 'Expect: 100-continue', '--data-binary', `@${file}`],
    `${upstream1()}/curl-expect`,
  ]);
  assert.match(expect.stderr, /< HTTP\/1\.1 100 Continue/);
  assert.equal(expect.stdout, said('POST', '/curl-expect', small));
});

test('openssl s_client -alpn: http/1.1 is selected and served; h2 alone is selected', {
  skip: skipOpenssl,
}, async () => {
  // s_client's -cert sends the leaf alone: the issuer goes in -cert_chain.
  const chain = join(dir, 'issuer.pem');
  const pem = await readFile(web.certFile, 'utf8');
  await writeFile(chain, pem.slice(pem.indexOf('-----BEGIN CERTIFICATE-----', 1)));
  /** s_client's output; with a request, it waits for the server to close (-ign_eof). */
  const sClient = async (alpn: string, request?: string) => {
    const flags = `-alpn ${alpn} -cert '${web.certFile}' -cert_chain '${chain}' -key '${web.keyFile}' -CAfile '${web.bundleFile}' -verify_return_error`;
    const command = request
      ? `printf '${request}' | openssl s_client -ign_eof ${flags}`
      : `openssl s_client ${flags} < /dev/null`;
    const { stdout } = await run(
      'sh',
      ['-c', `${command} -connect 127.0.0.1:${server.inbound[0]!.port} 2>&1`],
      {
        timeout: 10_000,
      },
    );
    return stdout;
  };
  const http1 = await sClient(
    'http/1.1',
    'GET /ossl HTTP/1.1\\r\\nHost: app\\r\\nConnection: close\\r\\n\\r\\n',
  );
  assert.match(http1, /ALPN protocol: http\/1\.1/);
  assert.match(http1, /Verification: OK/);
  assert.match(http1, /HTTP\/1\.1 200 OK\r\n/);
  assert.ok(http1.includes(saidEmpty('GET', '/ossl')), http1);
  assert.match(await sClient('h2'), /ALPN protocol: h2/);
});
