// The server side of createMeshTls (unverifiedServerOptions, then verifyClientChain) completes a
// client's leaf with the intermediates of its own chain, and with nothing that could become a
// trust anchor: real TLS handshakes on loopback.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { systemClock } from '../clock.ts';
import { createTestPki, type TestPki, type WorkloadFiles } from '../testing/mesh-pki.ts';
import { createMeshTls } from './mesh-tls.ts';
import { type PeerVerdict, verifyClientChain } from './verify-tls-peer.ts';

let dir: string;
let pki: TestPki;
let other: TestPki;
let server: Server;
const verdicts: PeerVerdict[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-tls-'));
  pki = await createTestPki(join(dir, 'mesh'));
  other = await createTestPki(join(dir, 'other'));
  const emoji = await pki.workload('emoji');
  // Our chain also carries another CA's issuer and its self-signed root (as Istio's cert-chain.pem
  // carries a root): neither may let that CA's workloads in, since the bundle holds only ours.
  const chain =
    (await readFile(emoji.certFile, 'utf8')) + other.issuer.certificatePem + other.anchor.certificatePem;
  const meshTls = createMeshTls(
    {
      spiffeId: emoji.spiffeId,
      privateKeyPem: await readFile(emoji.keyFile, 'utf8'),
      certificateChainPem: chain,
      trustBundlePem: pki.anchor.certificatePem,
      notBeforeMs: Date.now() - 60_000,
      notAfterMs: emoji.notAfterMs,
    },
    systemClock,
  );
  server = createServer(
    { ...meshTls.unverifiedServerOptions, requestCert: true, rejectUnauthorized: false },
    (socket) => {
      verdicts.push(verifyClientChain(socket, meshTls, systemClock));
      socket.end();
    },
  );
  await once(server.listen(0, '127.0.0.1'), 'listening');
});

after(async () => {
  server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The server's verdict on a client that sends only the leaf of `files`. */
async function leafOnly(files: WorkloadFiles) {
  const [leaf] = (await readFile(files.certFile, 'utf8')).split(/(?<=-----END CERTIFICATE-----\n)/);
  const count = verdicts.length;
  const socket: TLSSocket = connect({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    key: await readFile(files.keyFile),
    cert: leaf,
    rejectUnauthorized: false,
  });
  socket.on('error', () => {});
  socket.resume();
  await once(socket, 'close');
  assert.equal(verdicts.length, count + 1);
  return verdicts[count]!;
}

test("a leaf alone, signed by our issuer, is completed to the bundle's root", async () => {
  const web = await pki.workload('web');
  assert.deepEqual(await leafOnly(web), { ok: true, peerId: web.spiffeId });
});

test('a leaf alone, signed by an issuer in our chain whose root is not in the bundle, is refused', async () => {
  const verdict = await leafOnly(await other.workload('web'));
  assert.equal(verdict.ok, false);
  assert.equal(verdict.ok === false && verdict.reason, 'unknown_authority');
});
