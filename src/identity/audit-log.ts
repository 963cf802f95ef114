import { closeSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { MutualError } from '../errors.ts';
import { makeDirectorySync } from '../store/index.ts';

/**
 * One line of the audit log: every issuance, and every refusal of a token or a CSR. What anyone can
 * cause in a loop is sampled, the first of each kind at once, then one summary line with their
 * counts every 10 s: failed TLS handshakes, requests refused before their token is looked at (not
 * JSON, wrong content type, too large, too slow, an address penalised for bad tokens) and an
 * identity's requests past its rate limit.
 */
export interface AuditEntry {
  readonly time: string;
  /** The identity the token proved, or '' when the token itself was refused. */
  readonly identity: string;
  readonly result: 'issued' | 'refused';
  readonly serialNumber?: string;
  readonly notAfter?: string;
  /** The error code of a refusal. */
  readonly reason?: string;
  /** What was wrong with a refused request: the message its caller got. */
  readonly message?: string;
  readonly requester: string;
  readonly method?: string;
  /** A handle on the token that proved the identity (hash of its jti; a ServiceAccount's uid), never the token. */
  readonly tokenId?: string;
  /**
   * On a summary (written instead of one line each after the first of a kind): how many it stands
   * for, by kind (failed handshakes: the TLS error code, or plain_http; requests: the error code and
   * the stage, client address or identity).
   */
  readonly counts?: Readonly<Record<string, number>>;
}

export interface AuditLog {
  /** Throws MUTUAL_IDENTITY_UNAVAILABLE when the entry cannot be written. */
  record(entry: AuditEntry): void;
  close(): Promise<void>;
}

/**
 * Append-only JSON lines. The file is opened for appending, never truncated, so the history
 * survives restarts. Each entry is one synchronous append (a few µs into the page cache), so it is
 * in the file before the caller answers: no certificate leaves without its line, and an entry that
 * cannot be written (disk full) makes the request fail instead of the process.
 */
export function openAuditLog(path: string): AuditLog {
  makeDirectorySync(dirname(path), 0o700);
  let fd: number | undefined = openSync(path, 'a', 0o600);
  return {
    record(entry) {
      if (fd === undefined) throw unwritable(path, 'it is closed');
      const line = Buffer.from(`${JSON.stringify(entry)}\n`);
      try {
        for (let written = 0; written < line.length; ) {
          written += writeSync(fd, line, written, line.length - written);
        }
      } catch (error) {
        throw unwritable(path, (error as NodeJS.ErrnoException).code ?? String(error), error);
      }
    },
    async close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

function unwritable(path: string, why: string, cause?: unknown): MutualError {
  return new MutualError(
    'MUTUAL_IDENTITY_UNAVAILABLE',
    `the audit log ${path} cannot be written (${why}); nothing is issued until every request can be audited: free disk space or fix the state directory`,
    cause ? { cause } : {},
  );
}

/** For tests and for callers that keep the audit trail elsewhere. */
export function memoryAuditLog(): AuditLog & { readonly entries: AuditEntry[] } {
  const entries: AuditEntry[] = [];
  return { entries, record: (entry) => entries.push(entry), close: async () => {} };
}
