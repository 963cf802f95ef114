/** What a client did wrong, for the few OpenSSL refusals a mesh client can fix on its side. */
const HANDSHAKE_HINTS: Readonly<Record<string, string>> = {
  'unsupported protocol': 'the client offered only TLS 1.2 or older; mesh connections are TLS 1.3 only',
  'no suitable signature algorithm':
    'the client accepts no ECDSA P-256 signature, which mesh certificates use',
  'no suitable key share':
    'the client offers no key exchange group the mesh allows (X25519MLKEM768, X25519, P-256, P-384)',
};

/**
 * A refused handshake's error for a log line. OpenSSL's message names its own source file and
 * ends in a newline ("…:error:0A000102:SSL routines:func:unsupported protocol:../deps/openssl/….c:1913:\n"):
 * the log keeps its reason and says what it means for the client.
 */
export function describeHandshakeError(error: Error): string {
  const why = handshakeErrorReason(error);
  if (why === undefined) return error.message.trim();
  const hint = HANDSHAKE_HINTS[why];
  return hint ? `${why}: ${hint}` : why;
}

/** OpenSSL's reason text ("unsupported protocol", "tlsv1 alert unknown ca"), if `error` is OpenSSL's. */
export function handshakeErrorReason(error: Error): string | undefined {
  return /SSL routines:[^:]*:([^:\n]+)/.exec(error.message)?.[1];
}
