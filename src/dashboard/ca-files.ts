// The mesh CA's public certificates as the identity service reads them from disk (its issuer
// certificate and trust anchors, from the --ca directory or the file flags it was started with):
// what the Certificates tab shows when the identity service does not answer. Reads those two files
// only, never a key; each read is bounded, never blocks on a FIFO or device, and is done again only
// when the file changed (the page polls).
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type MeshRuntime, meshPaths } from '../mesh/index.ts';
import { parseBundle, parseCertificate, parseCertificatesPem } from '../pki/index.ts';
import { caFilePaths, fileKind, readRegularFile } from '../store/index.ts';

/** A certificate's public facts; `fingerprint` is the first 16 hex of its SHA-256, as the identity service's metrics label anchors. */
export interface CaFileCertificate {
  readonly fingerprint: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** One file read: what it held, or why it could not be read (never its contents). */
export interface CaFileRead<T> {
  readonly path: string;
  readonly value: T | undefined;
  readonly error: string | undefined;
}

export interface CaFiles {
  /** Where they were read from: the CA directory, or both paths when they are in different ones. */
  readonly from: string;
  readonly issuer: CaFileRead<CaFileCertificate>;
  readonly trustAnchors: CaFileRead<readonly CaFileCertificate[]>;
}

export interface CaFileReader {
  /** `stateDir`: where runtime.json is, the identity service's working directory. */
  read(runtime: MeshRuntime, stateDir: string): Promise<CaFiles>;
}

/** Certificates and bundles are a few KiB; anything past this is not one. */
export const MAX_CA_FILE_BYTES = 1024 * 1024;
const MAX_ERROR_CHARS = 400;
const CACHE_LIMIT = 16;

/** The last value of `--name VALUE` or `--name=VALUE` in an argv (commander keeps the last). */
function flagValue(argv: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (const [index, arg] of argv.entries()) {
    if (arg === name) found = argv[index + 1];
    else if (arg.startsWith(`${name}=`)) found = arg.slice(name.length + 1);
  }
  return found;
}

/**
 * The issuer certificate and trust anchors the mesh's identity service reads: the flags it was
 * started with (recorded in runtime.json; relative to the state directory, its working directory),
 * as `identity serve` picks them; without any, the CA directory of the state directory.
 */
export function identityCaPaths(
  runtime: MeshRuntime,
  stateDir: string,
): { issuerCertificate: string; trustAnchors: string } {
  const argv = Array.isArray(runtime.identity.argv) ? runtime.identity.argv.map(String) : [];
  const base = meshPaths(stateDir).stateDir;
  const given = (name: string) => {
    const value = flagValue(argv, name);
    return value === undefined || value === '' ? undefined : resolve(base, value);
  };
  const caDir = given('--ca');
  const fromDir = caFilePaths(caDir ?? meshPaths(stateDir).caDir);
  return {
    issuerCertificate: given('--issuer-cert') ?? fromDir.issuerCertificate,
    trustAnchors: given('--trust-anchors') ?? fromDir.trustAnchors,
  };
}

function describe(der: Uint8Array): CaFileCertificate {
  const parsed = parseCertificate(der);
  return {
    fingerprint: parsed.fingerprintSha256.slice(0, 16),
    subject: parsed.subject,
    notBefore: new Date(parsed.notBeforeMs).toISOString(),
    notAfter: new Date(parsed.notAfterMs).toISOString(),
  };
}

function whyUnreadable(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  if (code === 'ENOTDIR') return 'is not there (a part of its path is a file)';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return (error as Error).message;
}

function notAFile(info: Stats): string {
  return `is ${fileKind(info)}, not a certificate file`;
}

function tooLarge(size: string): string {
  return `is ${size}; a certificate file is at most ${MAX_CA_FILE_BYTES / 1024 / 1024} MiB, so this is not one`;
}

/** The file's text, at most MAX_CA_FILE_BYTES; opened non-blocking, so a FIFO swapped in after stat never hangs. */
async function readBounded(path: string): Promise<string> {
  const read = await readRegularFile(path, MAX_CA_FILE_BYTES);
  if (read.notAFile !== undefined) throw new Error(notAFile(read.notAFile.stats));
  if (read.tooLarge !== undefined) {
    const { size, grew } = read.tooLarge;
    throw new Error(tooLarge(grew ? `more than ${size} bytes` : `${size} bytes`));
  }
  return read.bytes.toString('utf8');
}

/** Parse errors name the file and what is wrong with it, never its bytes; long ones are cut. */
function shorten(message: string): string {
  const line = message.replace(/\s+/g, ' ').trim();
  return line.length > MAX_ERROR_CHARS ? `${line.slice(0, MAX_ERROR_CHARS - 1)}…` : line;
}

export function createCaFileReader(): CaFileReader {
  const cache = new Map<string, { version: string; read: CaFileRead<unknown> }>();

  async function readOne<T>(path: string, kind: string, parse: (text: string) => T): Promise<CaFileRead<T>> {
    let info: Stats;
    try {
      info = await stat(path);
    } catch (error) {
      cache.delete(`${kind}\0${path}`);
      return { path, value: undefined, error: `${path} ${whyUnreadable(error)}` };
    }
    const key = `${kind}\0${path}`;
    const version = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    const cached = cache.get(key);
    if (cached?.version === version) return cached.read as CaFileRead<T>;
    let read: CaFileRead<T>;
    if (!info.isFile()) {
      read = { path, value: undefined, error: `${path} ${notAFile(info)}` };
    } else if (info.size > MAX_CA_FILE_BYTES) {
      read = { path, value: undefined, error: `${path} ${tooLarge(`${info.size} bytes`)}` };
    } else {
      try {
        const text = await readBounded(path);
        try {
          read = { path, value: parse(text), error: undefined };
        } catch (error) {
          read = { path, value: undefined, error: shorten((error as Error).message) };
        }
      } catch (error) {
        read = { path, value: undefined, error: `${path} ${shorten(whyUnreadable(error))}` };
      }
    }
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, { version, read });
    return read;
  }

  return {
    async read(runtime, stateDir) {
      const paths = identityCaPaths(runtime, stateDir);
      const [issuer, trustAnchors] = await Promise.all([
        // The first certificate is the issuer; a chain may follow it.
        readOne(paths.issuerCertificate, 'issuer', (text) =>
          describe(parseCertificatesPem(text, paths.issuerCertificate)[0]!.der),
        ),
        readOne(paths.trustAnchors, 'anchors', (text) =>
          parseBundle(text, '', paths.trustAnchors).rootsDer.map(describe),
        ),
      ]);
      const directory = dirname(paths.issuerCertificate);
      return {
        from:
          directory === dirname(paths.trustAnchors)
            ? directory
            : `${paths.issuerCertificate} and ${paths.trustAnchors}`,
        issuer,
        trustAnchors,
      };
    },
  };
}
