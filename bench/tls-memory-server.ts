// The server half of `tls-memory.bench.ts`: a bare node:tls mTLS server (requestCert,
// rejectUnauthorized, TLS 1.3) that ends each connection after one byte. It reports its memory
// after gc() each time a line arrives on stdin, and exits when stdin ends. Plain node:* imports
// only, so it runs under any Node the bench is pointed at (TLS_MEMORY_NODE), Node 20 included.
// argv: <cert.pem> <key.pem> <ca.pem> [verify|unverified|peer-x509|sidecar]; needs --expose-gc.
// `unverified`: no CA, and the client's certificate is taken without verifying its chain
// (rejectUnauthorized false). `peer-x509`: as verify, and each connection's client certificate is
// read with getPeerX509Certificate() (Mutual's inbound until 2026-11-24). `sidecar`: as the
// inbound now is: no CA, the client's chain read with getPeerCertificate(true) (and verified by
// Mutual's own verifier, which keeps nothing per connection, so it is left out here).
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createServer } from 'node:tls';

const [certFile, keyFile, caFile, verification = 'verify'] = process.argv.slice(2);
if (!certFile || !keyFile || !caFile) throw new Error('usage: tls-memory-server <cert> <key> <ca>');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('tls-memory-server needs --expose-gc');

const counts = { completed: 0, resumed: 0, refused: 0 };
const server = createServer(
  {
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    ...(verification === 'unverified' || verification === 'sidecar'
      ? { rejectUnauthorized: false }
      : { ca: readFileSync(caFile), rejectUnauthorized: true }),
    requestCert: true,
    minVersion: 'TLSv1.3',
  },
  (socket) => {
    counts.completed++;
    if (socket.isSessionReused()) counts.resumed++;
    if (verification === 'peer-x509') socket.getPeerX509Certificate();
    if (verification === 'sidecar') socket.getPeerCertificate(true);
    socket.on('error', () => {});
    socket.end('x');
  },
);
server.on('tlsClientError', () => {
  counts.refused++;
});

async function memory() {
  // Two collections with a pause between, so sockets closed a moment ago are gone too.
  gc!();
  await new Promise((resolve) => setTimeout(resolve, 200));
  gc!();
  const usage = process.memoryUsage();
  return {
    rssBytes: usage.rss,
    heapUsedBytes: usage.heapUsed,
    externalBytes: usage.external,
    ...counts,
  };
}

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const header = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  console.log(
    JSON.stringify({
      port: typeof address === 'object' && address ? address.port : 0,
      node: process.version,
      openssl: process.versions.openssl,
      glibc: header?.header?.glibcVersionRuntime ?? 'unknown',
    }),
  );
  const lines = createInterface({ input: process.stdin });
  lines.on('line', async () => console.log(JSON.stringify(await memory())));
  lines.on('close', () => server.close(() => process.exit(0)));
});
