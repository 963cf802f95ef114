// The client half of `tls-memory.bench.ts`: makes `count` TLS 1.3 handshakes to the server, one
// at a time, each waiting for the server to close, and prints what it saw as one JSON line.
// argv: <mtls|no-cert|resumed|foreign-cert> <port> <count> <ca.pem> [<cert.pem> <key.pem>]
//   mtls          full handshakes with a client certificate (accepted)
//   no-cert       full handshakes without one (the server refuses each: alert certificate_required)
//   resumed       with a client certificate, resuming the last session ticket the server sent
//   foreign-cert  full handshakes with a certificate from another CA (the server refuses each)
import { readFileSync } from 'node:fs';
import { connect, createSecureContext } from 'node:tls';

const [mode, port, count, caFile, certFile, keyFile] = process.argv.slice(2);
if (mode !== 'mtls' && mode !== 'no-cert' && mode !== 'resumed' && mode !== 'foreign-cert')
  throw new Error(`unknown mode ${mode}: mtls, no-cert, resumed or foreign-cert`);
const withCert = mode !== 'no-cert';
const secureContext = createSecureContext({
  ca: readFileSync(caFile!),
  ...(withCert ? { cert: readFileSync(certFile!), key: readFileSync(keyFile!) } : {}),
  minVersion: 'TLSv1.3',
});
const seen = { handshakes: 0, resumed: 0, refused: 0 };
let session: Buffer | undefined;

function handshake(): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port: Number(port),
      secureContext,
      // The test PKI's SVIDs carry a SPIFFE URI, not a host name.
      checkServerIdentity: () => undefined,
      ...(mode === 'resumed' && session ? { session } : {}),
    });
    let refused = false;
    socket.on('secureConnect', () => {
      seen.handshakes++;
      if (socket.isSessionReused()) seen.resumed++;
    });
    socket.on('session', (ticket: Buffer) => {
      session = ticket;
    });
    socket.on('data', () => {});
    socket.on('error', () => {
      refused = true;
    });
    socket.on('close', () => {
      if (refused) seen.refused++;
      resolve();
    });
  });
}

for (let i = 0; i < Number(count); i++) await handshake();
console.log(JSON.stringify(seen));
