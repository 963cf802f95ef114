// gRPC and HTTP/2 clients nobody here wrote, through a pair of real sidecars: @grpc/grpc-js on
// both ends (client → client proxy's explicit upstream → mTLS → STRICT server proxy → grpc-js
// server), then curl and h2load through the same pair. Unary and server-streaming calls, the
// verified client identity, a policy denial, an app's own error status and an expired deadline;
// and curl's h2c upgrade offer, which must never reach an app as an upgrade.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { performServerHandshake } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  type Client,
  credentials,
  type handleUnaryCall,
  Metadata,
  type MethodDefinition,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServerWritableStream,
  type ServiceError,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const POLICIES = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: emoji, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  mtls: { mode: STRICT }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-votes, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/demo.Emoji/Vote"] } }]
`;

/** A method on strings, no .proto: the message is the UTF-8 bytes. */
function method(name: string, responseStream: boolean): MethodDefinition<string, string> {
  const serialize = (text: string) => Buffer.from(text);
  const deserialize = (bytes: Buffer) => bytes.toString();
  return {
    path: `/demo.Emoji/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  };
}
const EMOJI = {
  Get: method('Get', false),
  List: method('List', true),
  Vote: method('Vote', false),
  Find: method('Find', false),
  Slow: method('Slow', false),
};
type Unary = handleUnaryCall<string, string>;
type EmojiClient = Client & Record<keyof typeof EMOJI, (...args: unknown[]) => unknown>;

const has = (command: string, args: string[], pattern: RegExp) => {
  try {
    return pattern.test(execFileSync(command, args, { encoding: 'utf8', stdio: 'pipe' }));
  } catch {
    return false;
  }
};
const curlHasHttp2 = has('curl', ['--version'], / HTTP2( |$)/m);
const hasH2load = has('h2load', ['--version'], /nghttp2/);

/** A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, the bytes. */
function grpcFrame(message: string): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(Buffer.byteLength(message), 1);
  return Buffer.concat([head, Buffer.from(message)]);
}

describe('real gRPC and HTTP/2 clients through a pair of sidecars', () => {
  let dir: string;
  let app: Server;
  let client: EmojiClient;
  let clientId: string;
  let url: string;
  let http1Url: string;
  let http1App: HttpServer;
  let upgradesSeen = 0;
  const proxies: ProxyProcess[] = [];
  /** Every call the app received: method name and the x-mutual-client-id it saw. */
  const seen: { method: string; clientId: unknown }[] = [];
  let slowEnded: (how: { cancelled: boolean; hadDeadline: boolean }) => void = () => {};

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-grpc-'));
    const policyDir = join(dir, 'policies');
    await mkdir(policyDir);
    await writeFile(join(policyDir, 'emoji.yaml'), POLICIES);
    const pki = await createTestPki(join(dir, 'pki'));
    const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
    clientId = web!.spiffeId;

    const note = (name: string, metadata: Metadata) =>
      seen.push({ method: name, clientId: metadata.get('x-mutual-client-id')[0] });
    const unary =
      (name: string, handler: Unary): Unary =>
      (call, done) => {
        note(name, call.metadata);
        handler(call, done);
      };
    app = new Server();
    app.addService(EMOJI, {
      Get: unary('Get', (call, done) =>
        done(null, `${call.request} for ${call.metadata.get('x-mutual-client-id')}`),
      ),
      Vote: unary('Vote', (_call, done) => done(null, 'voted')),
      Find: unary('Find', (call, done) =>
        done({ code: status.NOT_FOUND, details: `no emoji ${call.request} ✨` }),
      ),
      Slow: unary('Slow', (call) => {
        call.once('cancelled', () =>
          slowEnded({ cancelled: call.cancelled, hadDeadline: Number.isFinite(Number(call.getDeadline())) }),
        );
      }),
      List: (call: ServerWritableStream<string, string>) => {
        note('List', call.metadata);
        for (let i = 0; i < 100; i++) call.write(`${call.request} ${i}`);
        const trailers = new Metadata();
        trailers.set('x-sent', '100');
        call.end(trailers);
      },
    });
    const appPort = await new Promise<number>((resolve, reject) =>
      app.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );

    // An HTTP/1 app that accepts h2c upgrades, as Go's h2c.NewHandler does.
    http1App = createHttpServer((request, response) => {
      const { upgrade = 'none', 'http2-settings': settings = 'none' } = request.headers;
      response.end(`${request.httpVersion} upgrade=${upgrade} http2-settings=${settings}`);
    });
    http1App.on('upgrade', (_request, socket) => {
      upgradesSeen++;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n');
      performServerHandshake(socket).on('stream', (stream) =>
        stream.respond({ ':status': 200 }, { endStream: true }),
      );
    });
    await new Promise<void>((resolve) => http1App.listen(0, '127.0.0.1', resolve));

    const server = await startProxyProcess([
      ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
      ...['--inbound', `127.0.0.1:0=${appPort}`],
      ...['--inbound', `127.0.0.1:0=${(http1App.address() as AddressInfo).port}`],
      ...['--policy-dir', policyDir, '--label', 'app=emoji', '--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(server);
    const sidecar = await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[1]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(sidecar);
    for (const proxy of proxies) await proxy.untilReady();
    const address = `127.0.0.1:${sidecar.outbound[0]!.port}`;
    url = `http://${address}`;
    http1Url = `http://127.0.0.1:${sidecar.outbound[1]!.port}`;
    const Emoji = makeGenericClientConstructor(EMOJI, 'Emoji');
    client = new Emoji(address, credentials.createInsecure()) as unknown as EmojiClient;
  });

  after(async () => {
    client?.close();
    app?.forceShutdown();
    http1App?.close();
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  const unary = (name: keyof typeof EMOJI, request: string, options: { deadline?: number } = {}) =>
    new Promise<{ value?: string; error?: ServiceError }>((resolve) => {
      client[name](request, new Metadata(), options, (error: ServiceError | null, value?: string) =>
        resolve(error ? { error } : { value }),
      );
    });

  test('a unary call returns the app’s answer; the app saw the client’s verified SPIFFE ID', async () => {
    const { value, error } = await unary('Get', 'smile');
    assert.equal(error, undefined);
    assert.equal(value, `smile for ${clientId}`);
    assert.deepEqual(seen.at(-1), { method: 'Get', clientId });
  });

  test('a server-streaming call delivers every message, then the status and trailers', async () => {
    const call = client.List('star', new Metadata()) as NodeJS.EventEmitter;
    const messages: string[] = [];
    call.on('data', (message: string) => messages.push(message));
    const final = await new Promise<StatusObject>((resolve) => call.on('status', resolve));
    assert.equal(final.code, status.OK);
    assert.deepEqual(final.metadata.get('x-sent'), ['100']);
    assert.deepEqual(
      messages,
      Array.from({ length: 100 }, (_, i) => `star ${i}`),
    );
  });

  test('a call the AuthorizationPolicy denies fails with PERMISSION_DENIED and never reaches the app', async () => {
    const before = seen.length;
    const { error } = await unary('Vote', 'thumbs up');
    assert.equal(error?.code, status.PERMISSION_DENIED, error?.message);
    assert.equal(error.details, 'RBAC: access denied');
    assert.equal(seen.length, before);
    assert.equal(seen.filter((call) => call.method === 'Vote').length, 0);
  });

  test('the app’s own error status and message reach the client unchanged', async () => {
    const { error } = await unary('Find', 'unicorn');
    assert.equal(error?.code, status.NOT_FOUND, error?.message);
    assert.equal(error.details, 'no emoji unicorn ✨');
  });

  test('an expired deadline is DEADLINE_EXCEEDED, the app sees it cancelled, the next call works', async () => {
    const ended = new Promise<{ cancelled: boolean; hadDeadline: boolean }>((resolve) => {
      slowEnded = resolve;
    });
    const { error } = await unary('Slow', 'wait', { deadline: Date.now() + 300 });
    assert.equal(error?.code, status.DEADLINE_EXCEEDED, error?.message);
    assert.deepEqual(await ended, { cancelled: true, hadDeadline: true });
    const { value } = await unary('Get', 'again');
    assert.equal(value, `again for ${clientId}`);
  });

  test('curl --http2-prior-knowledge makes a gRPC call and sees the status in the trailers', {
    skip: curlHasHttp2 ? false : 'curl with HTTP/2 support is not installed',
  }, async () => {
    const body = join(dir, 'get.bin');
    await writeFile(body, grpcFrame('curl'));
    const { stdout } = await promisify(execFile)(
      'curl',
      [
        ...['-sS', '--http2-prior-knowledge', '-D', '-', '-o', join(dir, 'answer.bin')],
        ...['-H', 'content-type: application/grpc', '-H', 'te: trailers', '--data-binary', `@${body}`],
        `${url}/demo.Emoji/Get`,
      ],
      { encoding: 'utf8' },
    );
    assert.match(stdout, /^HTTP\/2 200/);
    assert.match(stdout, /^grpc-status: 0\r?$/m);
  });

  test('h2load: 200 requests on 4 connections, 10 streams each at a time, all answered 2xx', {
    skip: hasH2load ? false : 'h2load (Debian nghttp2-client) is not installed',
  }, async () => {
    const body = join(dir, 'get.bin');
    await writeFile(body, grpcFrame('h2load'));
    const { stdout } = await promisify(execFile)(
      'h2load',
      [
        ...['-n', '200', '-c', '4', '-m', '10', '-d', body],
        ...['-H', 'content-type: application/grpc', '-H', 'te: trailers'],
        `${url}/demo.Emoji/Get`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.match(
      stdout,
      /requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored/,
      stdout,
    );
    assert.match(stdout, /status codes: 200 2xx,/, stdout);
  });

  test('curl --http2 offers an h2c upgrade: answered as HTTP/1.1, the app never sees the offer', {
    skip: curlHasHttp2 ? false : 'curl with HTTP/2 support is not installed',
  }, async () => {
    // Spliced as an upgrade, the connection would carry further requests as HTTP/2 streams the
    // server proxy never sees: past its policy, with any x-mutual-client-id the client likes.
    const { stdout } = await promisify(execFile)(
      'curl',
      ['-sS', '--http2', '-m', '10', '-w', ' [%{http_version} %{http_code}]', `${http1Url}/h2c`],
      { encoding: 'utf8' },
    );
    assert.equal(stdout, '1.1 upgrade=none http2-settings=none [1.1 200]');
    assert.equal(upgradesSeen, 0);
  });
});
