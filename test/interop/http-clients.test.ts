// HTTP clients nobody on this project wrote, used as a new user would: ab (HTTP/1.0, with and
// without keep-alive, POST bodies), wget, Python's http.client (HTTP/1.0, chunked uploads), curl
// (HTTP/1.0 keep-alive, slow chunked uploads, mTLS straight at the inbound) and h2load (HTTP/2
// prior knowledge, many streams), through a real sidecar pair's explicit upstream port to real
// apps. Each asserts what the client itself reports, what the app received and what the sidecars
// counted. A test whose client is not installed is skipped, naming the Debian package.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);

function installed(command: string, args: string[], pkg: string): false | string {
  try {
    execFileSync(command, args, { stdio: 'pipe' });
    return false;
  } catch (error) {
    // ab -V and wget --version exit 0; a missing binary is ENOENT.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    return `${command} (Debian ${pkg}) is not installed`;
  }
}
const skipAb = installed('ab', ['-V'], 'apache2-utils');
const skipWget = installed('wget', ['--version'], 'wget');
const skipCurl = installed('curl', ['--version'], 'curl');
const skipPython = installed('python3', ['--version'], 'python3');
const skipH2load = installed('h2load', ['--version'], 'nghttp2-client');

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** 3 MB an app serves at /big, and its digest. */
const BIG = randomBytes(3_000_000);

let dir: string;
let web: WorkloadFiles;
let server: ProxyProcess;
let client: ProxyProcess;
let http1: Server;
let http2: Http2Server;
/** `METHOD path got=bytes sha=digest` of every request the HTTP/1 app finished reading. */
const seen: string[] = [];

/** The HTTP/1 app: /big is BIG, ?size=N answers N bytes (chunked with mode=chunked); anything else describes the request. */
function startHttp1App(): Server {
  return createServer((request, response) => {
    const hash = createHash('sha256');
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://app');
      const line = `${request.method} ${url.pathname} got=${bytes} sha=${hash.digest('hex')}`;
      seen.push(line);
      if (url.pathname === '/big')
        return void response.writeHead(200, { 'content-length': BIG.length }).end(BIG);
      const size = Number(url.searchParams.get('size') ?? 0);
      const body = `${line} http=${request.httpVersion} id=${request.headers['x-mutual-client-id']}\n${'x'.repeat(size)}`;
      if (url.searchParams.get('mode') === 'chunked') return void response.end(body);
      response.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
}

/** The HTTP/2 app: /early refuses an upload with 413 before reading it (as nginx's `return` does). */
function startHttp2App(): Http2Server {
  return createHttp2Server((request, response) => {
    if (request.url.startsWith('/early')) return void response.writeHead(413).end('too large\n');
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    request.on('end', () => response.end(`h2 got=${bytes}\n`));
  });
}

async function listen(app: Server | Http2Server): Promise<number> {
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  return (app.address() as AddressInfo).port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-http-clients-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  web = await pki.workload('web');
  http1 = startHttp1App();
  http2 = startHttp2App();
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

/** The outbound's explicit upstream ports: to the HTTP/1 app, to the HTTP/2 app. */
const h1Url = (path: string) => `http://127.0.0.1:${client.outbound[0]!.port}${path}`;
const h2Url = (path: string) => `http://127.0.0.1:${client.outbound[1]!.port}${path}`;

/** ab's "Name: value" summary lines. */
function abField(output: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(output);
  assert.ok(match, `ab printed no "${name}":\n${output}`);
  return Number(match[1]);
}

async function requestCounts(method: string): Promise<{ outbound: number; inbound: number }> {
  const labels = { method, status_code: '200' };
  const [outbound, inbound] = await Promise.all([client.metrics(), server.metrics()]);
  return {
    outbound: metricValue(outbound, 'mutual_outbound_http_requests_total', {
      ...labels,
      destination: `127.0.0.1:${server.inbound[0]!.port}`,
    }),
    inbound: metricValue(inbound, 'mutual_inbound_http_requests_total', {
      ...labels,
      port: String((http1.address() as AddressInfo).port),
    }),
  };
}

test('ab -k (HTTP/1.0 keep-alive): 2000 requests, none failed, all kept alive, each counted by both sidecars', {
  skip: skipAb,
}, async () => {
  const before = await requestCounts('GET');
  const { stdout } = await run('ab', [
    '-k',
    '-q',
    '-s',
    '5',
    '-n',
    '2000',
    '-c',
    '10',
    h1Url('/ab?size=100'),
  ]);
  assert.equal(abField(stdout, 'Complete requests'), 2000, stdout);
  assert.equal(abField(stdout, 'Failed requests'), 0, stdout);
  assert.equal(abField(stdout, 'Keep-Alive requests'), 2000, stdout);
  const counted = await requestCounts('GET');
  assert.deepEqual(
    { outbound: counted.outbound - before.outbound, inbound: counted.inbound - before.inbound },
    { outbound: 2000, inbound: 2000 },
  );
});

test('ab without -k (HTTP/1.0, no keep-alive): every connection is closed after its answer', {
  skip: skipAb,
}, async () => {
  // ab waits for the close to end each response; -s 5 turns a connection left open into a failure.
  const { stdout } = await run('ab', [
    '-q',
    '-s',
    '5',
    '-n',
    '300',
    '-c',
    '5',
    h1Url('/close?size=10&mode=chunked'),
  ]);
  assert.equal(abField(stdout, 'Complete requests'), 300, stdout);
  assert.equal(abField(stdout, 'Failed requests'), 0, stdout);
  assert.doesNotMatch(stdout, /Keep-Alive requests/);
});

test('ab -k -p: 200 POSTs of 100 kB each reach the app whole', { skip: skipAb }, async () => {
  const body = randomBytes(100_000);
  const file = join(dir, 'ab-post.bin');
  await writeFile(file, body);
  seen.length = 0;
  const { stdout } = await run('ab', [
    ...['-k', '-q', '-s', '5', '-n', '200', '-c', '4', '-p', file, '-T', 'application/octet-stream'],
    h1Url('/post'),
  ]);
  assert.equal(abField(stdout, 'Failed requests'), 0, stdout);
  assert.equal(abField(stdout, 'Keep-Alive requests'), 200, stdout);
  assert.deepEqual(new Set(seen), new Set([`POST /post got=100000 sha=${sha(body)}`]));
  assert.equal(seen.length, 200);
});

test('wget downloads 3 MB byte for byte', { skip: skipWget }, async () => {
  const out = join(dir, 'wget.bin');
  await run('wget', ['-q', '-T', '10', '-t', '1', '-O', out, h1Url('/big')]);
  assert.equal(sha(await readFile(out)), sha(BIG));
});

test('python3 http.client: a chunked upload in odd-sized chunks, and HTTP/1.0 with a chunked answer', {
  skip: skipPython,
}, async () => {
  const script = `
import hashlib, http.client, json, sys
port = int(sys.argv[1])
data = bytes(range(256)) * 1200
def chunks():
    for i in range(0, len(data), 7001):
        yield data[i:i + 7001]
c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
c.request('PUT', '/chunked', body=chunks(), encode_chunked=True)
r = c.getresponse()
up = {'status': r.status, 'body': r.read().decode().split('\\n')[0], 'sha': hashlib.sha256(data).hexdigest()}
class Http10(http.client.HTTPConnection):
    _http_vsn, _http_vsn_str = 10, 'HTTP/1.0'
c = Http10('127.0.0.1', port, timeout=10)
c.request('POST', '/ten?size=5000&mode=chunked', body=b'hello')
r = c.getresponse()
body = r.read()
print(json.dumps({'up': up, 'status': r.status, 'connection': r.getheader('connection'), 'te': r.getheader('transfer-encoding'), 'length': len(body), 'tail': body[-5:].decode(), 'closed': r.isclosed()}))
`;
  const { stdout } = await run('python3', ['-c', script, String(client.outbound[0]!.port)]);
  const result = JSON.parse(stdout);
  assert.equal(result.up.status, 200);
  assert.equal(
    result.up.body,
    `PUT /chunked got=${256 * 1200} sha=${result.up.sha} http=1.1 id=${web.spiffeId}`,
  );
  // An HTTP/1.0 client cannot read chunked: the body ends with the connection, as nginx answers.
  assert.equal(result.status, 200);
  assert.equal(result.connection, 'close');
  assert.equal(result.te, null);
  assert.equal(result.tail, 'xxxxx');
  assert.equal(result.closed, true);
});

test('curl --http1.0 with Connection: keep-alive reuses the connection; curl -T - uploads chunked at 256 kB/s', {
  skip: skipCurl,
}, async () => {
  const reused = await run('curl', [
    ...['-sS', '-v', '-m', '10', '--http1.0', '-H', 'Connection: keep-alive'],
    ...[h1Url('/one?size=3'), h1Url('/two?size=3')],
  ]);
  assert.match(reused.stderr, /Re-using existing connection/);
  assert.equal((reused.stdout.match(/got=0/g) ?? []).length, 2, reused.stdout);

  const body = randomBytes(300_000);
  const file = join(dir, 'slow.bin');
  await writeFile(file, body);
  // -T - reads standard input, so curl sends it chunked; --limit-rate spreads it over a second.
  const upload = await run('sh', [
    '-c',
    `curl -sS -m 10 --limit-rate 256k -T - '${h1Url('/slow')}' < '${file}'`,
  ]);
  assert.match(
    upload.stdout,
    new RegExp(`^PUT /slow got=300000 sha=${sha(body)} http=1.1 id=${web.spiffeId}`),
  );
});

test('curl --cert straight at the inbound (mTLS): a chunked upload arrives whole with the verified identity', {
  skip: skipCurl,
}, async () => {
  const body = randomBytes(200_000);
  const file = join(dir, 'mtls.bin');
  await writeFile(file, body);
  const { stdout } = await run('sh', [
    '-c',
    // -k: the sidecar's certificate names a SPIFFE ID, not 127.0.0.1.
    `curl -sS -m 10 -k --cert '${web.certFile}' --key '${web.keyFile}' -T - 'https://127.0.0.1:${server.inbound[0]!.port}/direct' < '${file}'`,
  ]);
  assert.match(stdout, new RegExp(`^PUT /direct got=200000 sha=${sha(body)} http=1.1 id=${web.spiffeId}`));
});

test('h2load: 2000 requests, 50 streams at a time on 4 connections, all answered and counted', {
  skip: skipH2load,
}, async () => {
  const labels = { method: 'GET', status_code: '200', destination: `127.0.0.1:${server.inbound[1]!.port}` };
  const before = metricValue(await client.metrics(), 'mutual_outbound_http_requests_total', labels);
  const { stdout } = await run('h2load', ['-n', '2000', '-c', '4', '-m', '50', h2Url('/get')], {
    timeout: 15_000,
  });
  assert.match(stdout, /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/);
  const after = metricValue(await client.metrics(), 'mutual_outbound_http_requests_total', labels);
  assert.equal(after - before, 2000);
});

test('h2load uploads an app refuses with 413 before reading them: every stream ends, none hangs', {
  skip: skipH2load,
}, async () => {
  const file = join(dir, 'h2-upload.bin');
  await writeFile(file, randomBytes(100_000));
  // Each answer ended with RST_STREAM(NO_ERROR) sent ahead of its END_STREAM, which nghttp2 then
  // dropped: the next hop waited forever for the end of an answer it had whole (7 runs in 8 hung).
  for (let round = 0; round < 4; round++) {
    const { stdout } = await run(
      'h2load',
      ['-n', '20', '-c', '1', '-d', file, h2Url(`/early?round=${round}`)],
      {
        timeout: 5_000,
      },
    ).catch((error: { stdout?: string }) => ({ stdout: `h2load did not finish: ${error.stdout}` }));
    assert.match(stdout, /requests: 20 total, 20 started, 20 done/, stdout);
    assert.match(stdout, /status codes: 0 2xx, 0 3xx, 20 4xx, 0 5xx/, stdout);
  }
  // A client that goes on uploading after the 413 still gets its whole answer.
  const large = join(dir, 'h2-large.bin');
  await writeFile(large, randomBytes(3_000_000));
  const { stdout } = await run('h2load', ['-n', '6', '-c', '1', '-m', '3', '-d', large, h2Url('/early')], {
    timeout: 5_000,
  });
  assert.match(stdout, /status codes: 0 2xx, 0 3xx, 6 4xx, 0 5xx/, stdout);
});
