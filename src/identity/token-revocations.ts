// Join tokens are bearer credentials that live up to a year, so a copy that leaks (a token file in a
// backup, a shell history) must be stoppable before it expires without rotating the signing key,
// which would end every token at once. Revocations are lines appended to one file in the identity
// state directory: appends from several `mutual identity token revoke` runs cannot overwrite each
// other, and the service reads the file again whenever it changes, so a revocation needs no restart.
import { appendFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MutualError } from '../errors.ts';
import { makeDirectory } from '../store/index.ts';

export const REVOKED_TOKENS_FILE = 'revoked-tokens.jsonl';

/** One revocation: a single token (by its ID), or every token of one identity minted before a time. */
export type TokenRevocation =
  | { readonly tokenId: string; readonly revokedAt: string; readonly reason?: string }
  | {
      readonly namespace: string;
      readonly serviceAccount: string;
      /** Tokens whose `iat` is before this (RFC 3339) are revoked; those minted later are not. */
      readonly issuedBefore: string;
      readonly revokedAt: string;
      readonly reason?: string;
    };

/** What a join token says about itself, as far as revocation cares. */
export interface JoinTokenClaims {
  readonly tokenId: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly issuedAtMs: number;
}

const TOKEN_ID = /^[0-9a-f]{16}$/;

export function isTokenId(value: string): boolean {
  return TOKEN_ID.test(value);
}

/** Appends one revocation to `<stateDir>/revoked-tokens.jsonl` (0600), creating it if needed. */
export async function appendTokenRevocation(stateDir: string, revocation: TokenRevocation): Promise<string> {
  const path = join(stateDir, REVOKED_TOKENS_FILE);
  try {
    await makeDirectory(stateDir, 0o700);
    // One write of one line with O_APPEND: concurrent revokers each land whole.
    await appendFile(path, `${JSON.stringify(revocation)}\n`, { mode: 0o600 });
  } catch (error) {
    throw new MutualError(
      'MUTUAL_IO_WRITE_FAILED',
      `cannot record the revocation in ${path}: ${(error as Error).message}; nothing was revoked`,
      { cause: error },
    );
  }
  return path;
}

/**
 * Parses the revocations file: every line that is a revocation, and an error for each that is not
 * (naming its line). Revocations only take access away, so the valid ones apply whatever else the
 * file holds.
 */
export function parseTokenRevocations(
  text: string,
  path: string,
): { revocations: TokenRevocation[]; problems: MutualError[] } {
  const revocations: TokenRevocation[] = [];
  const problems: MutualError[] = [];
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const problem = (why: string) =>
      problems.push(
        new MutualError(
          'MUTUAL_IDENTITY_REVOCATIONS_INVALID',
          `${path}:${index + 1}: ${why}; fix or delete that line (\`mutual identity token revoke\` writes valid ones)`,
        ),
      );
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // The last line may be mid-append by a revoker right now; the next change reads it whole.
      if (index !== lines.length - 1) problem('not a JSON object');
      continue;
    }
    if (typeof value !== 'object' || value === null) {
      problem('not a JSON object');
      continue;
    }
    const entry = value as Record<string, unknown>;
    const revokedAt = typeof entry.revokedAt === 'string' ? entry.revokedAt : '';
    const reason = typeof entry.reason === 'string' ? { reason: entry.reason } : {};
    if (typeof entry.tokenId === 'string') {
      if (isTokenId(entry.tokenId)) revocations.push({ tokenId: entry.tokenId, revokedAt, ...reason });
      else problem(`tokenId ${JSON.stringify(entry.tokenId)} is not 16 hex digits`);
    } else if (
      typeof entry.namespace === 'string' &&
      typeof entry.serviceAccount === 'string' &&
      typeof entry.issuedBefore === 'string' &&
      Number.isFinite(Date.parse(entry.issuedBefore))
    ) {
      revocations.push({
        namespace: entry.namespace,
        serviceAccount: entry.serviceAccount,
        issuedBefore: entry.issuedBefore,
        revokedAt,
        ...reason,
      });
    } else {
      problem('neither a tokenId nor a namespace, serviceAccount and RFC 3339 issuedBefore');
    }
  }
  return { revocations, problems };
}

/** The revocation that covers a token, if any. */
export function findRevocation(
  revocations: readonly TokenRevocation[],
  token: JoinTokenClaims,
): TokenRevocation | undefined {
  return revocations.find((revocation) =>
    'tokenId' in revocation
      ? revocation.tokenId === token.tokenId
      : revocation.namespace === token.namespace &&
        revocation.serviceAccount === token.serviceAccount &&
        token.issuedAtMs < Date.parse(revocation.issuedBefore),
  );
}

export interface TokenRevocationList {
  /** The revocation covering this token, read from the file as it is now. */
  find(token: JoinTokenClaims): Promise<TokenRevocation | undefined>;
}

/**
 * The service's view of the revocations file, read again when its size or mtime changes. At start
 * a line that is not a revocation, or an unreadable file, is an error. While the service runs, such
 * a line is reported through `onInvalid` and every valid line still applies, and a file that cannot
 * be read keeps the last list in force: a bad edit never un-revokes a token.
 */
export async function openTokenRevocationList(
  stateDir: string,
  onInvalid: (error: MutualError) => void,
): Promise<TokenRevocationList> {
  const path = join(stateDir, REVOKED_TOKENS_FILE);
  let revocations: TokenRevocation[] = [];
  let version = '';
  let reported = '';
  const unreadable = (error: unknown) =>
    new MutualError(
      'MUTUAL_IDENTITY_REVOCATIONS_INVALID',
      `cannot read ${path}: ${(error as Error).message}: make it readable by the identity service (while it runs, the revocations it read last stay in force)`,
      { cause: error },
    );
  const load = async (): Promise<void> => {
    let current: string;
    try {
      const info = await stat(path);
      current = `${info.size}:${info.mtimeMs}:${info.ino}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw unreadable(error);
      current = 'none';
    }
    if (current === version) return;
    if (current === 'none') {
      // A deleted file is a deliberate reset (the revoked tokens have expired, say); nothing is lost
      // by honouring it, unlike an unreadable one.
      revocations = [];
      version = current;
      return;
    }
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw unreadable(error);
    }
    const parsed = parseTokenRevocations(text, path);
    revocations = parsed.revocations;
    version = current;
    if (parsed.problems.length > 0) throw parsed.problems[0];
  };
  const refresh = async (atStart: boolean) => {
    try {
      await load();
    } catch (error) {
      if (atStart || !(error instanceof MutualError)) throw error;
      if (reported !== error.message) {
        reported = error.message;
        onInvalid(error);
      }
    }
  };
  await refresh(true);
  return {
    async find(token) {
      await refresh(false);
      return findRevocation(revocations, token);
    },
  };
}
