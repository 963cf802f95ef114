// A real node:tls mutual handshake over 127.0.0.1 with Mutual's certificates: what the proxy
// relies on (TLS 1.3 only, the peer's SPIFFE ID on both sides, a reason for every rejection).
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { before, test } from 'node:test';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import { fixedClock, systemClock } from '../../src/clock.ts';
import { MutualError } from '../../src/errors.ts';
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  generateKeyPair,
  issueSvid,
  privateKeyToPem,
} from '../../src/pki/index.ts';

const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/shop/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/client`;
const TIMEOUT_MS = 5000;

interface Credentials {
  key: string;
  /** Leaf then issuer. */
  cert: string;
}

let root = '';
let server: Credentials;
let client: Credentials;
let foreignClient: Credentials;
let impostorServer: Credentials;

async function credentials(issuer: CertificateAuthority, spiffeId: string): Promise<Credentials> {
  const keys = await generateKeyPair();
  const svid = await issueSvid(issuer, {
    spiffeId,
    publicKey: keys.publicKey,
    clock: fixedClock(systemClock.now()),
  });
  return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem };
}

before(async () => {
  const clock = fixedClock(systemClock.now());
  const anchor = await createTrustAnchor({ trustDomain: TD, clock });
  const issuer = await createIssuer(anchor, { trustDomain: TD, clock });
  const foreignAnchor = await createTrustAnchor({ trustDomain: TD, clock });
  const foreignIssuer = await createIssuer(foreignAnchor, { trustDomain: TD, clock });
  root = anchor.certificatePem;
  server = await credentials(issuer, SERVER_ID);
  client = await credentials(issuer, CLIENT_ID);
  foreignClient = await credentials(foreignIssuer, CLIENT_ID);
  // Trusted, valid, but not the identity the client dials.
  impostorServer = await credentials(issuer, `spiffe://${TD}/ns/shop/sa/impostor`);
});

/** The URI SANs Node already parsed, e.g. "URI:spiffe://td/x, DNS:a" → ["spiffe://td/x"]. */
function uriSans(certificate: PeerCertificate | undefined): string[] {
  const names = certificate?.subjectaltname;
  if (!names) return [];
  return names
    .split(', ')
    .filter((name) => name.startsWith('URI:'))
    .map((name) => name.slice('URI:'.length));
}

/** The client's check: the server must present exactly the expected SPIFFE ID; the host is ignored. */
function spiffeIdCheck(expectedId: string): tls.ConnectionOptions['checkServerIdentity'] {
  return (_host, certificate) => {
    const ids = uriSans(certificate);
    if (ids.length === 1 && ids[0] === expectedId) return undefined;
    return new MutualError(
      'MUTUAL_PKI_SPIFFE_ID_MISMATCH',
      `server presented ${ids.join(', ') || 'no SPIFFE ID'}, expected ${expectedId}`,
    );
  };
}

interface ServerView {
  authorized: boolean;
  authorizationError?: string;
  peerIds: string[];
  protocol: string | null;
}

interface ClientView {
  isSecureConnected: boolean;
  error?: Error & { code?: string };
  reply: string;
  serverIds: string[];
  protocol: string | null;
  cipher?: tls.CipherNameAndProtocol;
  ephemeralKey?: tls.EphemeralKeyInfo | object | null;
}

interface Outcome {
  server?: ServerView;
  serverError?: Error & { code?: string };
  client: ClientView;
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One connection: a mesh server (mTLS, TLS 1.3 only) and a client with the given options. */
async function connect(
  serverCredentials: Credentials,
  clientOptions: tls.ConnectionOptions,
): Promise<Outcome> {
  let resolveServer: (view: { server?: ServerView; serverError?: Error }) => void = () => {};
  const serverDone = new Promise<{ server?: ServerView; serverError?: Error }>((resolve) => {
    resolveServer = resolve;
  });
  const tlsServer = tls.createServer(
    {
      ...serverCredentials,
      ca: [root],
      requestCert: true,
      // Reject in the handler instead, so the reason is known (Node gives none otherwise).
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    },
    (socket: TLSSocket) => {
      const view: ServerView = {
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
        peerIds: uriSans(socket.getPeerCertificate()),
        protocol: socket.getProtocol(),
      };
      resolveServer({ server: view });
      socket.on('error', () => {});
      if (!view.authorized) {
        socket.destroy();
        return;
      }
      socket.end(`hello ${view.peerIds.join(',')}`);
    },
  );
  tlsServer.on('tlsClientError', (error) => resolveServer({ serverError: error }));
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const { port } = tlsServer.address() as AddressInfo;
  try {
    const clientDone = new Promise<ClientView>((resolve) => {
      const view: ClientView = { isSecureConnected: false, reply: '', serverIds: [], protocol: null };
      const socket = tls.connect({ host: '127.0.0.1', port, ca: [root], ...clientOptions }, () => {
        view.isSecureConnected = true;
        view.serverIds = uriSans(socket.getPeerCertificate());
        view.protocol = socket.getProtocol();
        view.cipher = socket.getCipher();
        view.ephemeralKey = socket.getEphemeralKeyInfo();
      });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        view.reply += chunk;
      });
      socket.on('error', (error) => {
        view.error = error;
      });
      socket.on('close', () => resolve(view));
    });
    const clientView = await withTimeout(clientDone, 'the client connection');
    const serverView = await withTimeout(serverDone, 'the server side');
    return { ...serverView, client: clientView };
  } finally {
    tlsServer.close();
  }
}

test('a TLS 1.3 mutual handshake succeeds and each side sees the other SPIFFE ID', async (t) => {
  const outcome = await connect(server, { ...client, checkServerIdentity: spiffeIdCheck(SERVER_ID) });
  assert.equal(outcome.client.error, undefined, String(outcome.client.error));
  assert.ok(outcome.server, `server saw no connection: ${String(outcome.serverError)}`);
  assert.equal(outcome.server.authorized, true, outcome.server.authorizationError);
  assert.deepEqual(outcome.server.peerIds, [CLIENT_ID]);
  assert.equal(outcome.server.protocol, 'TLSv1.3');
  assert.deepEqual(outcome.client.serverIds, [SERVER_ID]);
  assert.equal(outcome.client.protocol, 'TLSv1.3');
  // Data flowed, so the server accepted the client certificate (not just the client's view).
  assert.equal(outcome.client.reply, `hello ${CLIENT_ID}`);
  assert.equal(outcome.client.cipher?.version, 'TLSv1.3');
  assert.match(
    outcome.client.cipher?.standardName ?? '',
    /^TLS_(AES_256_GCM_SHA384|AES_128_GCM_SHA256|CHACHA20_POLY1305_SHA256)$/,
  );
  t.diagnostic(
    `negotiated: ${outcome.client.protocol} ${outcome.client.cipher?.standardName} group ${JSON.stringify(outcome.client.ephemeralKey)}`,
  );
});

test('the key exchange group is the hybrid post-quantum X25519MLKEM768', async (t) => {
  const outcome = await connect(server, { ...client, checkServerIdentity: spiffeIdCheck(SERVER_ID) });
  const info = outcome.client.ephemeralKey as { type?: string; name?: string } | null | undefined;
  if (!info || info.name === undefined) {
    t.skip(
      `Node ${process.version} does not expose the negotiated group via getEphemeralKeyInfo(): ${JSON.stringify(info)}`,
    );
    return;
  }
  // Node 24 (OpenSSL 3.5) reports { type: 'TLSGroup', name: 'X25519MLKEM768' } on the client.
  assert.equal(info.name, 'X25519MLKEM768', JSON.stringify(info));
  assert.equal(info.type, 'TLSGroup');
});

test('the server rejects a client certificate from a foreign root, with a reason', async () => {
  const outcome = await connect(server, { ...foreignClient, checkServerIdentity: spiffeIdCheck(SERVER_ID) });
  assert.ok(outcome.server, `server saw no connection: ${String(outcome.serverError)}`);
  assert.equal(outcome.server.authorized, false);
  assert.equal(outcome.server.authorizationError, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  assert.deepEqual(outcome.server.peerIds, [CLIENT_ID], 'the ID is readable but must not be trusted');
  // TLS 1.3: the client may finish its handshake before the server refuses; no data ever flows.
  assert.equal(outcome.client.reply, '');
});

test('the server rejects a client that presents no certificate', async () => {
  const outcome = await connect(server, { checkServerIdentity: spiffeIdCheck(SERVER_ID) });
  assert.ok(outcome.server, `server saw no connection: ${String(outcome.serverError)}`);
  assert.equal(outcome.server.authorized, false);
  assert.ok(outcome.server.authorizationError, 'a reason is given');
  assert.deepEqual(outcome.server.peerIds, []);
  assert.equal(outcome.client.reply, '');
});

test('the client rejects a trusted server presenting the wrong SPIFFE ID', async () => {
  const outcome = await connect(impostorServer, { ...client, checkServerIdentity: spiffeIdCheck(SERVER_ID) });
  assert.ok(outcome.client.error, 'the client accepted an impostor');
  assert.equal(outcome.client.error.code, 'MUTUAL_PKI_SPIFFE_ID_MISMATCH');
  assert.match(outcome.client.error.message, /impostor/);
  assert.equal(outcome.client.isSecureConnected, false);
  assert.equal(outcome.client.reply, '');
  // The same server is fine for a client that expects it.
  const expected = await connect(impostorServer, {
    ...client,
    checkServerIdentity: spiffeIdCheck(`spiffe://${TD}/ns/shop/sa/impostor`),
  });
  assert.equal(expected.client.error, undefined);
  assert.equal(expected.client.reply, `hello ${CLIENT_ID}`);
});

test('a TLS 1.2-only client is refused by a TLS 1.3-only server', async () => {
  const outcome = await connect(server, {
    ...client,
    maxVersion: 'TLSv1.2',
    checkServerIdentity: spiffeIdCheck(SERVER_ID),
  });
  assert.ok(outcome.client.error, 'the TLS 1.2 client connected');
  assert.equal(outcome.client.error.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  assert.equal(outcome.client.isSecureConnected, false);
  assert.equal(outcome.server, undefined, 'the server completed a TLS 1.2 handshake');
  assert.match(String(outcome.serverError?.code ?? outcome.serverError), /PROTOCOL|VERSION/i);
});
