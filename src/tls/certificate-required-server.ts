// A TLS server that checks client chains itself, after the handshake (so each refusal carries its
// reason), but still refuses a client that sends no certificate at all inside the handshake, with
// TLS alert 116 (certificate_required), as nginx's `ssl_verify_client on` or Envoy do. Without it,
// `curl` or `openssl s_client` with no certificate completed a TLS 1.3 handshake and then met an
// end of stream ("unexpected eof while reading"), with nothing to say what was missing.
//
// Node asks OpenSSL for SSL_VERIFY_FAIL_IF_NO_PEER_CERT only with rejectUnauthorized: true, and
// the same flag makes Node destroy, unseen by the server, every client whose chain fails Node's
// own check (wrong CA, expired): those must still reach 'secureConnection' to be counted and
// logged with a reason. So the server is created with rejectUnauthorized: true, which Node reads
// once per socket to set OpenSSL's verify mode, and its sockets answer false when Node asks again
// after the handshake (TLSSocket#_rejectUnauthorized, read in onServerSocketSecure). The
// proxy's tests check both halves: the alert, and a wrong-CA client counted as unknown_authority.
import { createServer, type Server, TLSSocket, type TlsOptions } from 'node:tls';

const serversVerifyingChainsThemselves = new WeakSet<Server>();
const rejectUnauthorizedOption = Symbol('mutual.rejectUnauthorized');

interface TlsSocketInternals {
  _tlsOptions?: { server?: Server };
  [rejectUnauthorizedOption]?: boolean;
}

let isInstalled = false;

function installOnce(): void {
  if (isInstalled) return;
  isInstalled = true;
  Object.defineProperty(TLSSocket.prototype, '_rejectUnauthorized', {
    configurable: true,
    get(this: TlsSocketInternals): boolean {
      const server = this._tlsOptions?.server;
      if (server !== undefined && serversVerifyingChainsThemselves.has(server)) return false;
      return this[rejectUnauthorizedOption] === true;
    },
    set(this: TlsSocketInternals, value: boolean) {
      this[rejectUnauthorizedOption] = value;
    },
  });
}

/**
 * `tls.createServer` with client certificates required in the handshake (alert 116 without one),
 * while every presented chain, valid or not, reaches 'secureConnection' (`authorized`,
 * `authorizationError` set as usual) for the caller to verify and refuse with a reason.
 */
export function createCertificateRequiredServer(
  options: Omit<TlsOptions, 'requestCert' | 'rejectUnauthorized'>,
): Server {
  return verifyClientChainsAfterHandshake(
    createServer({ ...options, requestCert: true, rejectUnauthorized: true }),
  );
}

/**
 * The same for a server made elsewhere (`http2.createSecureServer`, a `tls.Server`), which must
 * have been created with `requestCert: true` and `rejectUnauthorized: true`.
 */
export function verifyClientChainsAfterHandshake<S extends Server>(server: S): S {
  installOnce();
  serversVerifyingChainsThemselves.add(server);
  return server;
}
