// Failed TLS handshakes at the webhook's HTTPS port: counted by OpenSSL's code and logged, the
// first of each code at once, then one line per interval with the counts, so that a scanner
// (testssl.sh and nmap's ssl-enum-ciphers make hundreds of refused handshakes) cannot fill the log.
// The failure that matters in a cluster, the API server not trusting the serving certificate,
// says what to fix. Plain HTTP is not handled here (plain-http.ts answers it).
import type { Duplex } from 'node:stream';
import { LOG_INTERVAL_MS, sampledLog } from '../../log/index.ts';
import type { Counter } from '../../metrics/index.ts';
import { handshakeErrorReason } from '../../tls/index.ts';

const UNTRUSTED =
  "the client does not trust the serving certificate: the webhook configuration's caBundle must hold the issuer of --cert (mutual install sets both; docs/kubernetes.md)";

/** What the client must change, by OpenSSL's reason text. */
const HINTS: Readonly<Record<string, string>> = {
  'tlsv1 alert unknown ca': UNTRUSTED,
  'sslv3 alert bad certificate': UNTRUSTED,
  'sslv3 alert certificate unknown': UNTRUSTED,
  'unsupported protocol': 'the client offered only TLS 1.1 or older; the webhook takes TLS 1.2 and 1.3',
  'no shared cipher':
    'the client offered no cipher suite the webhook takes (TLS 1.3, or TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305)',
};

export interface HandshakeFailureOptions {
  readonly log: (line: string) => void;
  /** mutual_injector_tls_handshakes_failed_total, labelled by code. */
  readonly counter: Counter<'code'>;
  readonly logIntervalMs?: number;
}

export interface HandshakeFailures {
  /** Counts, logs and closes `socket` when `error` is a failed TLS handshake; false, with nothing done, otherwise. */
  refuse(error: NodeJS.ErrnoException, socket: Duplex): boolean;
  /** Stops the pending log line. */
  close(): void;
}

export function handshakeFailures(options: HandshakeFailureOptions): HandshakeFailures {
  const log = sampledLog<string>({
    log: options.log,
    intervalMs: options.logIntervalMs,
    summary: (counts, total, seconds) =>
      `inject: ${total} more failed TLS handshakes in the last ${seconds} s: ${[...counts].map(([code, count]) => `${count} ${code}`).join(', ')}\n`,
  });
  return {
    refuse(error, socket) {
      const code = error.code ?? '';
      if (!code.startsWith('ERR_SSL_') && !code.startsWith('ERR_TLS_')) return false;
      options.counter.inc({ code });
      socket.destroy();
      const { remoteAddress } = socket as { remoteAddress?: string };
      log.report(code, () => {
        const reason = handshakeErrorReason(error) ?? error.message.trim();
        const hint = HINTS[reason];
        return `inject: TLS handshake from ${remoteAddress ?? 'a client'} failed [${code}]: ${reason}${hint ? `: ${hint}` : ''}. Later ones are summed up every ${(options.logIntervalMs ?? LOG_INTERVAL_MS) / 1000} s\n`;
      });
      return true;
    },
    close: log.close,
  };
}
