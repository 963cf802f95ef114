// Reading policy files from disk: files and directories (their *.yaml / *.yml files, not
// recursive, hidden and editor backup files skipped), parsed and checked as one set.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MutualError } from '../errors.ts';
import type { PolicyDiagnostic } from './diagnostic.ts';
import { type ParseOptions, parsePolicyText } from './parse.ts';
import type { PolicyResource } from './resource.ts';

export interface LoadedPolicies {
  readonly files: readonly string[];
  readonly resources: readonly PolicyResource[];
  /** Errors and single-policy warnings; duplicates across files are errors here too. */
  readonly diagnostics: readonly PolicyDiagnostic[];
  /** sha256 over file names and contents: equal fingerprints mean nothing changed. */
  readonly fingerprint: string;
}

export interface LoadOptions extends ParseOptions {
  /**
   * The fingerprint of a set already loaded: when the files still hash to it they are not parsed
   * again, and the answer is `{ unchanged: true, fingerprint }`. A store polling a directory of 40
   * files spent most of an idle sidecar's CPU re-parsing YAML that had not changed.
   */
  readonly unlessFingerprint?: string;
}

export function isPolicyFileName(name: string): boolean {
  return /\.ya?ml$/i.test(name) && !name.startsWith('.') && !name.startsWith('#');
}

/** The policy files under each path: a file as given, a directory's YAML files sorted by name. */
export async function listPolicyFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'ENOENT' && cause.code !== 'ENOTDIR') throw cannotRead(path, cause);
      throw new MutualError('MUTUAL_POLICY_NOT_FOUND', `${path}: no such file or directory`, {
        cause,
        detail: { path },
      });
    });
    if (!info.isDirectory()) {
      files.push(path);
      continue;
    }
    const names = (
      await readdir(path).catch((cause: NodeJS.ErrnoException) => {
        throw cannotRead(path, cause);
      })
    )
      .filter(isPolicyFileName)
      .sort();
    files.push(...names.map((name) => join(path, name)));
  }
  return files;
}

function cannotRead(path: string, cause: Error): MutualError {
  return new MutualError('MUTUAL_IO_READ_FAILED', `cannot read ${path}: ${cause.message}`, { cause });
}

export async function loadPolicyFiles(
  paths: readonly string[],
  options?: ParseOptions,
): Promise<LoadedPolicies>;
export async function loadPolicyFiles(
  paths: readonly string[],
  options: LoadOptions,
): Promise<LoadedPolicies | { readonly unchanged: true; readonly fingerprint: string }>;
export async function loadPolicyFiles(
  paths: readonly string[],
  options: LoadOptions = {},
): Promise<LoadedPolicies | { readonly unchanged: true; readonly fingerprint: string }> {
  const files = await listPolicyFiles(paths);
  const texts = await Promise.all(
    files.map((file) =>
      readFile(file, 'utf8').catch((cause: unknown) => {
        // A file renamed away between readdir and read (editors do this) is simply gone.
        if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw cannotRead(file, cause as Error);
      }),
    ),
  );
  const present: string[] = [];
  const hash = createHash('sha256');
  for (const [index, file] of files.entries()) {
    const text = texts[index];
    if (text === undefined) continue;
    present.push(file);
    hash.update(`${file}\0${text}\0`);
  }
  const fingerprint = hash.digest('hex');
  if (fingerprint === options.unlessFingerprint) return { unchanged: true, fingerprint };
  const resources: PolicyResource[] = [];
  const diagnostics: PolicyDiagnostic[] = [];
  for (const [index, file] of files.entries()) {
    const text = texts[index];
    if (text === undefined) continue;
    const parsed = parsePolicyText(text, file, options);
    resources.push(...parsed.resources);
    diagnostics.push(...parsed.diagnostics);
  }
  diagnostics.push(...duplicates(resources));
  for (const path of paths) diagnostics.push(...(await unreadSubdirectories(path)));
  return { files: present, resources, diagnostics, fingerprint };
}

/**
 * A warning for each subdirectory of a policy directory that holds policy files: they are not
 * read, so a DENY kept in `policies/shop/` would be silently ignored (kubectl apply -f reads one
 * level too, without -R). Hidden ones are skipped: a mounted ConfigMap keeps its files in `..data`.
 */
async function unreadSubdirectories(path: string): Promise<PolicyDiagnostic[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  const found: PolicyDiagnostic[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const subdirectory = join(path, entry.name);
    const names = (await readdir(subdirectory).catch(() => [] as string[])).filter(isPolicyFileName);
    if (names.length === 0) continue;
    found.push({
      file: subdirectory,
      line: 1,
      column: 1,
      severity: 'warning',
      code: 'policy-subdirectory-not-read',
      message: `${names.length} policy file${names.length === 1 ? '' : 's'} in the subdirectory ${entry.name}/ (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}) ${names.length === 1 ? 'is' : 'are'} not read: a policy directory is read one level deep, so ${names.length === 1 ? 'its' : 'their'} policies are not enforced`,
      hint: `Move the files up into ${path}, or rename the subdirectory to start with "." if it holds copies that must not apply.`,
    });
  }
  return found;
}

function duplicates(resources: readonly PolicyResource[]): PolicyDiagnostic[] {
  const seen = new Map<string, PolicyResource>();
  const found: PolicyDiagnostic[] = [];
  for (const resource of resources) {
    const key = `${resource.kind} ${resource.meta.id}`;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, resource);
      continue;
    }
    const where = first.meta.position;
    found.push({
      ...resource.meta.position,
      severity: 'error',
      code: 'MUTUAL_POLICY_INVALID',
      policy: resource.meta.id,
      message: `${resource.kind} ${resource.meta.id} is defined twice (first at ${where.file}:${where.line})`,
      hint: 'Give each policy a unique namespace/name, or delete one of the copies.',
    });
  }
  return found;
}
