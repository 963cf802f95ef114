import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

/** One line of the audit log: every issuance and every refusal. */
export interface AuditEntry {
  readonly time: string;
  /** The identity the token proved, or '' when the token itself was refused. */
  readonly identity: string;
  readonly result: 'issued' | 'refused';
  readonly serialNumber?: string;
  readonly notAfter?: string;
  /** The error code of a refusal. */
  readonly reason?: string;
  /** What was wrong, for refusals made before the token was read (bad JSON, too large, too slow). */
  readonly message?: string;
  readonly requester: string;
  readonly method?: string;
}

export interface AuditLog {
  record(entry: AuditEntry): void;
  close(): Promise<void>;
}

/**
 * Append-only JSON lines. The file is opened for appending, never truncated, so the history
 * survives restarts; each entry is one write, so a crash loses at most the entry in flight.
 */
export function openAuditLog(path: string): AuditLog {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const stream: WriteStream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  return {
    record(entry) {
      stream.write(`${JSON.stringify(entry)}\n`);
    },
    close() {
      return new Promise((resolve) => stream.end(resolve));
    },
  };
}

/** For tests and for callers that keep the audit trail elsewhere. */
export function memoryAuditLog(): AuditLog & { readonly entries: AuditEntry[] } {
  const entries: AuditEntry[] = [];
  return { entries, record: (entry) => entries.push(entry), close: async () => {} };
}
