// The least a Node sidecar can be, for `proxy.bench`'s idle-memory figure: the same Node binary
// and flags as `mutual proxy run`, holding what any Node mTLS sidecar holds (a node:tls server that
// requires and verifies client certificates, a client context with the same credentials, two
// node:http listeners for outbound and admin, node:http2 loaded) and none of Mutual's code.
// Its RSS says how much of an idle sidecar's memory is Node itself. Only node:* imports.
// argv: <cert.pem> <key.pem> <ca.pem>; prints "ready" once everything listens.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect } from 'node:http2';
import { createSecureContext, createServer } from 'node:tls';

const [certFile, keyFile, caFile] = process.argv.slice(2);
if (!certFile || !keyFile || !caFile) throw new Error('usage: idle-node-floor <cert> <key> <ca>');
const credentials = { cert: readFileSync(certFile), key: readFileSync(keyFile), ca: readFileSync(caFile) };

const inbound = createServer(
  { ...credentials, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
  (socket) => socket.end(),
);
const clientContext = createSecureContext({ ...credentials, minVersion: 'TLSv1.3' });
const outbound = createHttpServer((_request, response) => response.end());
const admin = createHttpServer((_request, response) => response.end('ok'));
// Loaded, as the sidecar's HTTP/2 relay loads it; the session fails at once (nothing listens on port 1).
connect('http://127.0.0.1:1').on('error', () => {});

let listening = 0;
for (const server of [inbound, outbound, admin]) {
  server.listen(0, '127.0.0.1', () => {
    if (++listening === 3) console.log(`ready (client context ${clientContext ? 'made' : 'missing'})`);
  });
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
