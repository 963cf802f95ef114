// What a sidecar answers, itself, to HTTP/1 requests it will not forward as they are: two Host
// headers (400 in both directions), CONNECT (501, never a silent close), and `Expect: 100-continue`
// on a request policy denies (403 without ever inviting the body). Raw bytes and real curl go to a
// real sidecar pair over mTLS, to a PERMISSIVE port in plaintext and through the outbound; the app
// records every request it gets, and the sidecars' metrics must count every answer.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const DENY_UPLOADS = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-uploads, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/denied*"] } }]
`;

let dir: string;
let web: WorkloadFiles;
let server: ProxyProcess;
let client: ProxyProcess;
const apps: Server[] = [];
/** `METHOD target bytes` of every request an app received. */
const seen: string[] = [];
let key: Buffer;
let cert: Buffer;
let ca: Buffer;

function app(request: IncomingMessage, response: ServerResponse) {
  let bytes = 0;
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  request.on('end', () => {
    seen.push(`${request.method} ${request.url} ${bytes}`);
    response.end(`app got ${bytes} bytes`);
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-http1-answers-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'emoji.yaml'), DENY_UPLOADS);
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  web = await pki.workload('web');
  [key, cert, ca] = await Promise.all([
    readFile(web.keyFile),
    readFile(web.certFile),
    readFile(web.bundleFile),
  ]);
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) {
    const server = createServer(app);
    // An app that is a forward proxy: a CONNECT reaching it would be tunnelled.
    server.on('connect', (request: IncomingMessage, socket: Socket) => {
      seen.push(`CONNECT ${request.url}`);
      socket.end('HTTP/1.1 200 Connection established\r\n\r\n');
    });
    apps.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.push((server.address() as AddressInfo).port);
  }
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${ports[0]}`, '--inbound', `127.0.0.1:0=${ports[1]}`],
    ...['--mode', 'STRICT', '--port-mode', `${ports[1]}=PERMISSIVE`, '--admin-listen', '127.0.0.1:0'],
    ...['--policy-dir', policyDir, '--label', 'app=emoji'],
  ]);
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  for (const app of apps) {
    app.close();
    app.closeAllConnections();
  }
  await rm(dir, { recursive: true, force: true });
});

type Via = 'mtls' | 'plaintext' | 'outbound';
const VIAS: Via[] = ['mtls', 'plaintext', 'outbound'];

function open(via: Via): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (via === 'mtls') {
      const socket = tlsConnect({
        ...{ host: '127.0.0.1', port: server.inbound[0]!.port, key, cert, ca },
        checkServerIdentity: () => undefined,
      });
      socket.once('secureConnect', () => resolve(socket)).once('error', reject);
      return;
    }
    const port = via === 'plaintext' ? server.inbound[1]!.port : client.outbound[0]!.port;
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket)).once('error', reject);
  });
}

/**
 * Sends `parts` (a function waits until it holds for what came back, or fails after 3 s) and
 * collects the answer until the sidecar closes the connection (8 s at most).
 */
async function exchange(via: Via, parts: (string | ((text: string) => boolean))[]): Promise<string> {
  const socket = await open(via);
  let text = '';
  let onData = () => {};
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    onData();
  });
  const closed = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.on('error', () => {});
  });
  const timer = setTimeout(() => socket.destroy(), 8000);
  try {
    for (const part of parts) {
      if (typeof part === 'string') socket.write(part);
      else if (!part(text)) {
        await new Promise<void>((resolve, reject) => {
          const waited = setTimeout(
            () => reject(new Error(`no such answer in 3 s; got ${JSON.stringify(text)}`)),
            3000,
          );
          onData = () => {
            if (!part(text)) return;
            clearTimeout(waited);
            resolve();
          };
        });
      }
    }
  } catch (error) {
    clearTimeout(timer);
    socket.destroy();
    throw error;
  }
  await closed;
  clearTimeout(timer);
  return text;
}

/** The status lines of every answer in `text`. */
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => match[1]);

/** The requests the apps got before a request for `marker`, which comes last once all else is in. */
async function seenUntil(via: Via, marker: string): Promise<string[]> {
  const answer = await exchange(via, [`GET ${marker} HTTP/1.1\r\nHost: emoji\r\nConnection: close\r\n\r\n`]);
  assert.deepEqual(statuses(answer), ['200'], answer);
  const found = seen.splice(0);
  assert.equal(found.at(-1), `GET ${marker} 0`);
  return found.slice(0, -1);
}

/** The sidecar that answers `via`'s requests, and the metric it counts them in. */
const counter = (via: Via) =>
  via === 'outbound'
    ? { proxy: client, metric: 'mutual_outbound_http_requests_total' }
    : { proxy: server, metric: 'mutual_inbound_http_requests_total' };

async function counted(via: Via, labels: Record<string, string>): Promise<number> {
  const { proxy, metric } = counter(via);
  const tls = via === 'plaintext' ? 'no_identity' : 'true';
  return metricValue(await proxy.metrics(), metric, { ...labels, tls });
}

for (const via of VIAS) {
  test(`${via}: two Host headers get a 400 saying so, the connection closes and nothing reaches the app`, async () => {
    seen.length = 0;
    const before = await counted(via, { method: 'POST', status_code: '400' });
    // A body and a pipelined request behind it: neither may reach the app.
    const answer = await exchange(via, [
      'POST /two-hosts HTTP/1.1\r\nHost: emoji\r\nHost: other\r\nContent-Length: 4\r\n\r\nBODYGET /pipelined HTTP/1.1\r\nHost: emoji\r\n\r\n',
    ]);
    assert.deepEqual(statuses(answer), ['400'], answer);
    assert.match(answer, /^x-mutual-proxy-error: bad_request\r$/im);
    assert.match(answer, /^connection: close\r$/im);
    assert.match(answer, /mutual: bad request: the request has 2 Host headers; send one\n/);
    assert.deepEqual(await seenUntil(via, `/after-two-hosts-${via}`), []);
    assert.equal(await counted(via, { method: 'POST', status_code: '400' }), before + 1);
  });

  test(`${via}: CONNECT gets a 501 that explains, is counted, and never reaches the app`, async () => {
    seen.length = 0;
    const before = await counted(via, { method: 'CONNECT', status_code: '501' });
    // The bytes a client sends for the tunnel right behind its request are dropped.
    const answer = await exchange(via, [
      'CONNECT emoji.demo:443 HTTP/1.1\r\nHost: emoji.demo:443\r\n\r\n\x16\x03\x01 not a request',
    ]);
    assert.deepEqual(statuses(answer), ['501'], answer);
    assert.match(answer, /^HTTP\/1\.1 501 Not Implemented\r\n/);
    assert.match(answer, /^x-mutual-proxy-error: connect_not_supported\r$/im);
    assert.match(answer, /^connection: close\r$/im);
    assert.match(answer, /\r\n\r\nmutual: CONNECT is not supported: .*--opaque-ports.*\n$/);
    assert.deepEqual(await seenUntil(via, `/after-connect-${via}`), []);
    assert.equal(await counted(via, { method: 'CONNECT', status_code: '501' }), before + 1);
  });
}

for (const via of ['mtls', 'plaintext'] as const) {
  test(`${via}: Expect: 100-continue on a denied request gets the 403 and never a 100 Continue`, async () => {
    seen.length = 0;
    // The client waits for 100 Continue before sending its body; the 403 must come without it.
    const answer = await exchange(via, [
      'POST /denied/upload HTTP/1.1\r\nHost: emoji\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
    ]);
    assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/, answer);
    assert.deepEqual(statuses(answer), ['403'], answer);
    assert.doesNotMatch(answer, /100 Continue/);
    // Whether the client sends the body now is unknown, so the connection cannot go on.
    assert.match(answer, /^connection: close\r$/im);
    assert.match(answer, /RBAC: access denied$/);
    assert.deepEqual(await seenUntil(via, `/after-denied-${via}`), []);
  });

  test(`${via}: Expect: 100-continue on an allowed request gets 100 Continue, then the app's answer`, async () => {
    seen.length = 0;
    const answer = await exchange(via, [
      'POST /upload HTTP/1.1\r\nHost: emoji\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n',
      (text) => text.includes('\r\n\r\n'),
      'HELLO',
    ]);
    assert.match(answer, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/, answer);
    assert.match(answer, /app got 5 bytes$/);
    assert.deepEqual(await seenUntil(via, `/after-allowed-${via}`), ['POST /upload 5']);
  });
}

const hasCurl = (() => {
  try {
    return /^curl /.test(execFileSync('curl', ['--version'], { encoding: 'utf8', stdio: 'pipe' }));
  } catch {
    return false;
  }
})();

test('curl --data-binary @2MiB with Expect: 100-continue: a denied upload is refused before any body is sent', {
  skip: hasCurl ? false : 'curl is not installed',
}, async () => {
  const upload = join(dir, 'upload.bin');
  await writeFile(upload, Buffer.alloc(2 * 1024 * 1024, 'x'));
  const curl = async (via: 'mtls' | 'plaintext', path: string) => {
    const url =
      via === 'mtls'
        ? `https://127.0.0.1:${server.inbound[0]!.port}${path}`
        : `http://127.0.0.1:${server.inbound[1]!.port}${path}`;
    // -k: the sidecar's certificate names a SPIFFE ID, not 127.0.0.1; the client certificate is web's.
    const tls = via === 'mtls' ? ['-k', '--cert', web.certFile, '--key', web.keyFile] : [];
    const { stdout, stderr } = await promisify(execFile)(
      'curl',
      [
        ...['-sS', '-v', '-m', '20', ...tls, '-H', 'Expect: 100-continue', '--data-binary', `@${upload}`],
        url,
      ],
      { encoding: 'utf8' },
    );
    return { stdout, stderr, continued: /^< HTTP\/1\.1 100 Continue/m.test(stderr) };
  };
  for (const via of ['mtls', 'plaintext'] as const) {
    seen.length = 0;
    const denied = await curl(via, '/denied/big');
    assert.equal(denied.continued, false, denied.stderr);
    assert.match(denied.stderr, /^< HTTP\/1\.1 403 Forbidden/m);
    assert.equal(denied.stdout, 'RBAC: access denied');
    const allowed = await curl(via, '/big');
    assert.equal(allowed.continued, true, allowed.stderr);
    assert.match(allowed.stderr, /^< HTTP\/1\.1 200 OK/m);
    assert.equal(allowed.stdout, `app got ${2 * 1024 * 1024} bytes`);
    assert.deepEqual(seen, [`POST /big ${2 * 1024 * 1024}`]);
  }
});
