// The server name (SNI) the outbound's ClientHello carries: the expected identity as a DNS host
// name (`<sa>.<ns>.serviceaccount.identity.<td>`, as Linkerd names identities), never the SPIFFE
// ID itself, which is no host name and which Java's TLS refuses. A node:tls server holding a
// Mutual SVID stands in for the destination's proxy and records what each ClientHello named.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

let dir: string;
let destination: Server;
let proxy: ProxyProcess;
const serverNames: (string | false)[] = [];
const sockets = new Set<TLSSocket>();
let oddServer: Server;
let namedUrl: string;
let unnamedUrl: string;

/** One GET on a connection of its own, so nothing keeps the sidecar's drain waiting. */
const statusOf = (url: string) =>
  new Promise<number>((resolve, reject) =>
    get(url, { agent: false }, (answer) => {
      answer.resume();
      answer.on('end', () => resolve(answer.statusCode!));
    }).on('error', reject),
  );

/** A destination's proxy stand-in holding `workload`'s SVID: records each ClientHello's name, answers 200. */
async function standIn(workload: WorkloadFiles): Promise<Server> {
  const server = createServer({
    key: await readFile(workload.keyFile),
    cert: await readFile(workload.certFile),
    requestCert: true,
    rejectUnauthorized: false,
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    serverNames.push((socket as TLSSocket & { servername: string | false }).servername);
    socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-sni-'));
  const pki = await createTestPki(dir);
  const api = await pki.workload('api', { ns: 'shop' });
  const odd = await pki.workload('odd', { spiffeId: `spiffe://${pki.trustDomain}/workloads/odd` });
  const web = await pki.workload('web', { ns: 'shop' });
  destination = await standIn(api);
  oddServer = await standIn(odd);
  const portOf = (server: Server) => (server.address() as AddressInfo).port;
  proxy = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${api.spiffeId}@127.0.0.1:${portOf(destination)}`],
    ...['--upstream', `127.0.0.1:0=${odd.spiffeId}@127.0.0.1:${portOf(oddServer)}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
  namedUrl = `http://127.0.0.1:${proxy.outbound[0]!.port}/`;
  unnamedUrl = `http://127.0.0.1:${proxy.outbound[1]!.port}/`;
});

after(async () => {
  await proxy?.stop();
  destination?.close();
  oddServer?.close();
  for (const socket of sockets) socket.destroy();
  await rm(dir, { recursive: true, force: true });
});

test('the ClientHello names the expected identity as a host name', async () => {
  assert.equal(await statusOf(namedUrl), 200);
  assert.deepEqual(serverNames.splice(0), ['api.shop.serviceaccount.identity.cluster.local']);
});

test('an identity with no host-name form sends no SPIFFE ID as SNI (an IP destination: none at all)', async () => {
  assert.equal(await statusOf(unnamedUrl), 200);
  assert.deepEqual(serverNames.splice(0), [false]);
});
