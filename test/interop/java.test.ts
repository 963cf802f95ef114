// Java's own TLS (JSSE, OpenJDK 17) with Mutual-issued SVIDs, converted as a Java user would
// (`openssl pkcs12 -export`): java.net.http.HttpClient presenting a client SVID straight to a
// STRICT inbound, and com.sun.net.httpserver.HttpsServer with needClientAuth as the meshed
// server the outbound originates mTLS to. The Java side is test/interop/fixtures/MutualJava.java,
// compiled here with javac; it verifies peers as SPIFFE asks (chain, then URI SAN, no host name).
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);
const has = (command: string, args: string[]) => {
  try {
    execFileSync(command, args, { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
};
const missing = [
  ['java', ['-version']],
  ['javac', ['-version']],
  ['openssl', ['version']],
].filter(([command, args]) => !has(command as string, args as string[]));
const skip = missing.length
  ? `needs ${missing.map(([c]) => c).join(', ')} (apt-get install openjdk-17-jdk-headless openssl)`
  : false;

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const SOURCE = join(repoRoot(), 'test', 'interop', 'fixtures', 'MutualJava.java');
const PASSWORD = 'changeit';

describe('JSSE (OpenJDK) clients and servers with Mutual SVIDs', { skip }, () => {
  let dir: string;
  let classes: string;
  let app: Server;
  let javaServer: ChildProcessWithoutNullStreams | undefined;
  const proxies: ProxyProcess[] = [];
  let emoji: WorkloadFiles;
  let web: WorkloadFiles;
  let inboundUrl: string;
  let outboundUrl: string;
  let wrongIdentityUrl: string;

  const keystore = async (name: string, files: WorkloadFiles) => {
    const out = join(dir, `${name}.p12`);
    await run('openssl', [
      ...['pkcs12', '-export', '-inkey', files.keyFile, '-in', files.certFile],
      ...['-out', out, '-passout', `pass:${PASSWORD}`],
    ]);
    return out;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-java-'));
    classes = join(dir, 'classes');
    const compiled = run('javac', ['-d', classes, SOURCE]);
    const pki = await createTestPki(join(dir, 'pki'));
    [emoji, web] = (await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)))) as [
      WorkloadFiles,
      WorkloadFiles,
    ];
    const javaSvid = await pki.workload('java-server');
    const [javaKeys] = await Promise.all([keystore('java-server', javaSvid), keystore('web', web), compiled]);

    app = createServer((request, response) => {
      let sent = 0;
      request.on('data', (chunk: Buffer) => {
        sent += chunk.length;
      });
      request.on('end', () =>
        response.end(
          `HTTP/${request.httpVersion} client=${request.headers['x-mutual-client-id']} sent=${sent}\n`,
        ),
      );
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));

    const java = spawn('java', [
      '-cp',
      classes,
      'MutualJava',
      'server',
      javaKeys,
      PASSWORD,
      javaSvid.bundleFile,
    ]);
    javaServer = java;
    let javaOutput = '';
    const javaPort = await new Promise<number>((resolve, reject) => {
      java.stdout.on('data', (chunk: Buffer) => {
        javaOutput += chunk.toString();
        const match = /port (\d+)/.exec(javaOutput);
        if (match) resolve(Number(match[1]));
      });
      java.stderr.on('data', (chunk: Buffer) => {
        javaOutput += chunk.toString();
      });
      java.once('exit', () => reject(new Error(`the Java server exited:\n${javaOutput}`)));
    });

    const server = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
      ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(server);
    const client = await startProxyProcess([
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...['--upstream', `127.0.0.1:0=${javaSvid.spiffeId}@127.0.0.1:${javaPort}`],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${javaPort}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(client);
    await Promise.all(proxies.map((proxy) => proxy.untilReady()));
    inboundUrl = `https://127.0.0.1:${server.inbound[0]!.port}/hello`;
    outboundUrl = `http://127.0.0.1:${client.outbound[0]!.port}/to-java`;
    wrongIdentityUrl = `http://127.0.0.1:${client.outbound[1]!.port}/to-java`;
  });

  after(async () => {
    javaServer?.stdin.end(); // it stops at the end of its input
    javaServer?.kill();
    app?.close();
    app?.closeAllConnections();
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The Java client's two requests (the second on the first's connection); `serverId` 'pkix' checks the host name. */
  const javaClient = async (version: 'HTTP_1_1' | 'HTTP_2', serverId: string) => {
    const args = ['-cp', classes, 'MutualJava', 'client', inboundUrl, version, join(dir, 'web.p12')];
    try {
      const { stdout } = await run('java', [...args, PASSWORD, web.bundleFile, serverId], {
        timeout: 15_000,
      });
      return stdout;
    } catch (error) {
      return `failed: ${(error as { stderr?: string }).stderr ?? error}`;
    }
  };

  test('HttpClient (HTTP/1.1) presents its SVID to a STRICT inbound: the app sees its SPIFFE ID', async () => {
    const expected = `200 HTTP_1_1 HTTP/1.1 client=${web.spiffeId} sent=7`;
    assert.equal(await javaClient('HTTP_1_1', emoji.spiffeId), `${expected}\n${expected}\n`);
  });

  test('HttpClient asking for HTTP/2 speaks HTTP/1.1: the inbound selects no ALPN protocol', async () => {
    const expected = `200 HTTP_1_1 HTTP/1.1 client=${web.spiffeId} sent=7`;
    assert.equal(await javaClient('HTTP_2', emoji.spiffeId), `${expected}\n${expected}\n`);
  });

  test('HttpClient with its default host name check refuses the SVID, which names no host (docs/proxy.md)', async () => {
    assert.match(
      await javaClient('HTTP_1_1', 'pkix'),
      // Newer JDK 17 updates put the alert first: '(certificate_unknown) No subject …'.
      /SSLHandshakeException: (\(certificate_unknown\) )?No subject alternative names matching IP address 127\.0\.0\.1 found/,
    );
  });

  test('the outbound originates mTLS to a JSSE HttpsServer with needClientAuth: TLS 1.3, our SVID accepted', async () => {
    // The outbound sent the SPIFFE ID as SNI; JSSE refused the ClientHello (illegal_parameter:
    // "Illegal server name ... Contains non-LDH ASCII characters") and the app got 502.
    const response = await fetch(outboundUrl, { method: 'POST', body: 'abc' });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(
      await response.text(),
      `client=${web.spiffeId} protocol=TLSv1.3 method=POST path=/to-java sent=3\n`,
    );
  });

  test('a JSSE server that is not the expected identity gets no request: 502 wrong_identity', async () => {
    const response = await fetch(wrongIdentityUrl, { method: 'POST', body: 'abc' });
    assert.equal(response.status, 502);
    assert.equal(response.headers.get('x-mutual-proxy-error'), 'wrong_identity');
  });
});
