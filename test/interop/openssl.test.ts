// Interop with the system's `openssl` (3.0): our certificates must pass its strict path
// validation and purpose checks, its name-constraint checks must reject a leaf outside the trust
// domain, and s_server/s_client must complete a TLS 1.3 mutual handshake with them.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock, systemClock } from '../../src/clock.ts';
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  encodePem,
  generateKeyPair,
  issueSvid,
  privateKeyToPem,
} from '../../src/pki/index.ts';
import { toCryptoKey, x509 } from '../../src/pki/x509-library.ts';

const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/shop/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/client`;
const EVIL_ID = 'spiffe://evil.example/ns/shop/sa/client';
const COMMAND_TIMEOUT_MS = 10_000;

let dir = '';
const file = (name: string): string => join(dir, name);

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function openssl(args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`openssl ${args.join(' ')} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A long-running openssl process whose combined output can be awaited. */
interface Running {
  child: ChildProcessWithoutNullStreams;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<boolean>;
  exited: Promise<number | null>;
}

function start(args: readonly string[]): Running {
  // stdin stays open: s_server and s_client stop at end of input.
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const wake of waiters) wake();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.stdin.on('error', () => {}); // EPIPE once the peer has gone
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      for (const wake of waiters) wake();
      resolve(code);
    });
    child.on('error', () => resolve(null));
  });
  let isDone = false;
  exited.then(() => {
    isDone = true;
  });
  return {
    child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = COMMAND_TIMEOUT_MS) {
      return new Promise((resolve) => {
        const check = (): void => {
          if (pattern.test(output)) finish(true);
          else if (isDone || child.exitCode !== null) finish(false);
        };
        const timer = setTimeout(() => finish(false), timeoutMs);
        const finish = (value: boolean): void => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(value);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

function stop(running: Running | undefined): void {
  if (running && running.child.exitCode === null && running.child.signalCode === null)
    running.child.kill('SIGKILL');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** s_server on a free 127.0.0.1 port; another process may grab the port first, so retry. */
async function startServer(args: readonly string[]): Promise<{ server: Running; port: number }> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const server = start(['s_server', '-accept', `127.0.0.1:${port}`, ...args]);
    if (await server.waitFor(/^ACCEPT$/m)) return { server, port };
    stop(server);
    await server.exited;
    if (!/in use|bind/i.test(server.output())) throw new Error(`s_server did not start:\n${server.output()}`);
  }
  throw new Error('s_server found no free port in 5 attempts');
}

interface Pki {
  anchor: CertificateAuthority;
  issuer: CertificateAuthority;
}

async function writeLeaf(pki: Pki, name: string, spiffeId: string): Promise<void> {
  const keys = await generateKeyPair();
  const svid = await issueSvid(pki.issuer, {
    spiffeId,
    publicKey: keys.publicKey,
    clock: fixedClock(systemClock.now()),
  });
  await writeFile(file(`${name}.pem`), svid.certificatePem);
  await writeFile(file(`${name}-chain.pem`), svid.chainPem);
  await writeFile(file(`${name}.key`), privateKeyToPem(keys.privateKey), { mode: 0o600 });
}

/** A leaf for another trust domain signed with the issuer's key, as a buggy or hostile CA would. */
async function writeForgedLeaf(issuer: CertificateAuthority, name: string, spiffeId: string): Promise<void> {
  const keys = await generateKeyPair();
  const now = systemClock.now();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: '7f0102030405060708',
    subject: '',
    issuer: issuer.certificate.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    publicKey: toCryptoKey(keys.publicKey),
    signingKey: toCryptoKey(issuer.keys.privateKey),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
      await x509.SubjectKeyIdentifierExtension.create(toCryptoKey(keys.publicKey)),
      await x509.AuthorityKeyIdentifierExtension.create(toCryptoKey(issuer.keys.publicKey)),
    ],
  });
  await writeFile(file(`${name}.pem`), encodePem('CERTIFICATE', new Uint8Array(certificate.rawData)));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-openssl-'));
  const clock = fixedClock(systemClock.now());
  const anchor = await createTrustAnchor({ trustDomain: TD, clock });
  const pki: Pki = { anchor, issuer: await createIssuer(anchor, { trustDomain: TD, clock }) };
  const foreignAnchor = await createTrustAnchor({ trustDomain: TD, clock });
  const foreign: Pki = {
    anchor: foreignAnchor,
    issuer: await createIssuer(foreignAnchor, { trustDomain: TD, clock }),
  };
  const open = await createIssuer(anchor, { trustDomain: TD, clock, isNameConstrained: false });

  await writeFile(file('root.pem'), pki.anchor.certificatePem);
  await writeFile(file('issuer.pem'), pki.issuer.certificatePem);
  await writeFile(file('open-issuer.pem'), open.certificatePem);
  await writeFile(file('foreign-root.pem'), foreign.anchor.certificatePem);
  await writeFile(file('foreign-issuer.pem'), foreign.issuer.certificatePem);
  await writeLeaf(pki, 'server', SERVER_ID);
  await writeLeaf(pki, 'client', CLIENT_ID);
  await writeLeaf(foreign, 'foreign-client', CLIENT_ID);
  await writeForgedLeaf(pki.issuer, 'evil', EVIL_ID);
  await writeForgedLeaf(open, 'evil-open', EVIL_ID);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function verify(
  purpose: string,
  leaf: string,
  root = 'root.pem',
  untrusted = 'issuer.pem',
): Promise<RunResult> {
  return openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    purpose,
    '-CAfile',
    file(root),
    '-untrusted',
    file(untrusted),
    file(leaf),
  ]);
}

test('openssl verify -x509_strict accepts our leaves for sslclient and sslserver', async () => {
  for (const purpose of ['sslclient', 'sslserver']) {
    for (const leaf of ['server.pem', 'client.pem']) {
      const result = await verify(purpose, leaf);
      assert.equal(result.code, 0, `${purpose} ${leaf}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /: OK$/m);
    }
  }
  // The issuer itself chains to the root under strict checks.
  const issuer = await openssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), file('issuer.pem')]);
  assert.equal(issuer.code, 0, issuer.stdout + issuer.stderr);
});

test('openssl verify rejects a leaf from another root', async () => {
  const result = await verify('sslclient', 'foreign-client.pem', 'root.pem', 'foreign-issuer.pem');
  assert.notEqual(result.code, 0);
  assert.match(result.stdout + result.stderr, /unable to get local issuer certificate/);
  const withoutIssuer = await verify('sslclient', 'client.pem', 'foreign-root.pem', 'foreign-issuer.pem');
  assert.notEqual(withoutIssuer.code, 0);
});

test('openssl x509 -text shows exactly the X509-SVID extensions', async () => {
  const result = await openssl(['x509', '-in', file('server.pem'), '-noout', '-text']);
  assert.equal(result.code, 0, result.stderr);
  const text = result.stdout;
  assert.match(text, /Version: 3 \(0x2\)/);
  assert.match(text, /^\s+Subject: *$/m, 'subject must be empty');
  assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
  assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
  assert.match(
    text,
    /X509v3 Extended Key Usage: *\n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/,
  );
  assert.match(text, new RegExp(`X509v3 Subject Alternative Name: critical\\n\\s+URI:${SERVER_ID}\\n`));
  assert.match(text, /X509v3 Subject Key Identifier:/);
  assert.match(text, /X509v3 Authority Key Identifier:/);
  const extensionNames = (text.match(/X509v3 [A-Za-z ]+:/g) ?? []).filter(
    (name) => name !== 'X509v3 extensions:',
  );
  assert.equal(extensionNames.length, 6, `no other extensions: ${extensionNames.join(', ')}`);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);

  const issuer = await openssl(['x509', '-in', file('issuer.pem'), '-noout', '-text']);
  assert.match(issuer.stdout, /X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
  assert.match(issuer.stdout, /X509v3 Name Constraints: critical\n\s+Permitted:\n\s+URI:cluster\.local\n/);
});

test("the issuer's name constraint makes openssl reject a leaf of another trust domain", async () => {
  const constrained = await verify('sslclient', 'evil.pem');
  assert.notEqual(constrained.code, 0, 'openssl accepted spiffe://evil.example under the constrained issuer');
  assert.match(constrained.stdout + constrained.stderr, /permitted subtree violation/);
  // The control: the same forged leaf under an unconstrained issuer passes, so the constraint
  // (not some other defect of the forged leaf) is what stops it.
  const unconstrained = await verify('sslclient', 'evil-open.pem', 'root.pem', 'open-issuer.pem');
  assert.equal(unconstrained.code, 0, unconstrained.stdout + unconstrained.stderr);
});

interface Handshake {
  server: string;
  client: string;
  clientCode: number | null;
}

/** One s_server (mTLS required, TLS 1.3) and one s_client presenting `clientName`. */
async function handshake(clientName: string, clientIssuer: string): Promise<Handshake> {
  let server: Running | undefined;
  let client: Running | undefined;
  try {
    const started = await startServer([
      '-cert',
      file('server.pem'),
      '-key',
      file('server.key'),
      '-cert_chain',
      file('issuer.pem'),
      '-CAfile',
      file('root.pem'),
      '-Verify',
      '1',
      '-verify_return_error',
      '-tls1_3',
      '-naccept',
      '1',
    ]);
    server = started.server;
    client = start([
      's_client',
      '-connect',
      `127.0.0.1:${started.port}`,
      '-cert',
      file(`${clientName}.pem`),
      '-key',
      file(`${clientName}.key`),
      '-cert_chain',
      file(clientIssuer),
      '-CAfile',
      file('root.pem'),
      '-verify_return_error',
      '-tls1_3',
      '-brief',
    ]);
    if (await client.waitFor(/CONNECTION ESTABLISHED/)) {
      client.child.stdin.write('hello from client\n');
      // Either the server reads the line, or it rejects the certificate and the client exits.
      await Promise.race([server.waitFor(/hello from client/), client.exited]);
    }
    client.child.stdin.end();
    const clientCode = await Promise.race([
      client.exited,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref()),
    ]);
    await server.waitFor(/CONNECTION CLOSED|ERROR/, 3000);
    return { server: server.output(), client: client.output(), clientCode };
  } finally {
    stop(client);
    stop(server);
  }
}

test('s_server and s_client complete a TLS 1.3 mutual handshake with our SVIDs', async () => {
  const result = await handshake('client', 'issuer.pem');
  assert.match(result.client, /Protocol version: TLSv1\.3/, result.client);
  assert.match(result.client, /Verification: OK/, result.client);
  assert.match(result.server, /hello from client/, result.server);
  assert.doesNotMatch(result.server, /verify error/);
  // s_server verified the whole chain and prints the client's certificate: its SAN is our ID.
  assert.match(result.server, /depth=2 O = Mutual, CN = Mutual trust anchor/);
  assert.match(result.server, /^subject=\s*$/m, 'the client certificate subject is empty');
  const clientPem = result.server.match(
    /Client certificate\n(-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----)/,
  )?.[1];
  assert.ok(clientPem, `s_server printed no client certificate:\n${result.server}`);
  assert.equal(new X509Certificate(clientPem).subjectAltName, `URI:${CLIENT_ID}`);
  assert.match(result.server, /CIPHER is TLS_AES_(256_GCM_SHA384|128_GCM_SHA256)|CIPHER is TLS_CHACHA20/);
});

test('s_server rejects a client certificate from a foreign root', async () => {
  const result = await handshake('foreign-client', 'foreign-issuer.pem');
  assert.match(result.server, /verify error:num=20:unable to get local issuer certificate/, result.server);
  assert.doesNotMatch(result.server, /hello from client/);
  assert.doesNotMatch(result.server, /Client certificate/);
  // In TLS 1.3 the client finishes its side first, then reads the server's alert.
  assert.match(result.client, /alert unknown ca/, result.client);
  assert.notEqual(result.clientCode, 0);
});
