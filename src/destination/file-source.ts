// The file source: a table of address → identity entries (YAML or JSON) that `mutual up` or a
// person writes. Watched: a changed file replaces the table; a bad one is refused and the last good
// table keeps answering. Write it atomically (a temp file renamed over it).
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { MutualError, toMutualError } from '../errors.ts';
import { canonicalIp } from '../ip/index.ts';
import { tryParseSpiffeId } from '../spiffe/index.ts';
import { readFailure } from '../store/index.ts';
import {
  type DestinationAnswer,
  type DestinationProtocol,
  type DestinationSource,
  PROTOCOLS,
} from './answer.ts';

const portNumber = z
  .number()
  .int()
  .min(1, 'must be a port from 1 to 65535')
  .max(65535, 'must be a port from 1 to 65535');
const entrySchema = z.strictObject({
  // Canonical, as sidecars ask: ::FFFF:C612:5 is 198.18.0.5, FD00:0::5 is fd00::5.
  address: z
    .string()
    .refine((text) => canonicalIp(text) !== undefined, 'must be an IPv4 or IPv6 address')
    .transform((text) => canonicalIp(text)!),
  serverId: z
    .string()
    .refine(
      (text) => tryParseSpiffeId(text)?.path.startsWith('/') === true,
      'must be a workload SPIFFE ID, e.g. spiffe://cluster.local/ns/demo/sa/web',
    ),
  ports: z
    .array(
      z.union([
        portNumber,
        z.strictObject({ port: portNumber, protocol: z.enum(PROTOCOLS as [DestinationProtocol]).optional() }),
      ]),
    )
    .optional(),
  names: z
    .array(z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lower-case DNS name'))
    .optional(),
});
const tableSchema = z.strictObject({ destinations: z.array(entrySchema).default([]) });

export interface DestinationTableEntry {
  readonly address: string;
  readonly serverId: string;
  /** Port → protocol; undefined: every port of the address, protocol detect. */
  readonly ports?: ReadonlyMap<number, DestinationProtocol>;
  readonly names: readonly string[];
}

/** Parses a destination table, or throws MUTUAL_DESTINATION_TABLE_INVALID naming every bad entry. */
export function parseDestinationTable(text: string, file: string): DestinationTableEntry[] {
  let raw: unknown;
  try {
    raw = parse(text) ?? {};
  } catch (error) {
    throw new MutualError(
      'MUTUAL_DESTINATION_TABLE_INVALID',
      `${file} is not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  const parsed = tableSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const path = issue.path
        .map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`))
        .join('');
      return `  ${path.replace(/^\./, '') || '(top level)'}: ${issue.message}`;
    });
    throw new MutualError(
      'MUTUAL_DESTINATION_TABLE_INVALID',
      `${file} has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`} (format: docs/destination.md):\n${problems.join('\n')}`,
    );
  }
  const entries = parsed.data.destinations.map(
    (entry): DestinationTableEntry => ({
      address: entry.address,
      serverId: entry.serverId,
      ...(entry.ports
        ? {
            ports: new Map(
              entry.ports.map((port) =>
                typeof port === 'number' ? [port, 'detect'] : [port.port, port.protocol ?? 'detect'],
              ),
            ),
          }
        : {}),
      names: entry.names ?? [],
    }),
  );
  const clashes = tableClashes(entries);
  if (clashes.length > 0) {
    throw new MutualError(
      'MUTUAL_DESTINATION_TABLE_INVALID',
      `${file} claims a destination in two entries (entries may share an address or a name on different ports only):\n${clashes.map((clash) => `  ${clash}`).join('\n')}`,
    );
  }
  return entries;
}

/**
 * Entries that claim the same address (or name) on the same port: two services on 127.0.0.1 with
 * a port in common, or two that list no ports (every port). Entries on different ports may share.
 */
function tableClashes(entries: readonly DestinationTableEntry[]): string[] {
  const clashes: string[] = [];
  const claims = new Map<string, Array<{ index: number; ports: ReadonlySet<number> | undefined }>>();
  entries.forEach((entry, index) => {
    const ports = entry.ports ? new Set(entry.ports.keys()) : undefined;
    for (const key of new Set([entry.address, ...entry.names])) {
      const earlier = claims.get(key) ?? [];
      for (const claim of earlier) {
        const shared =
          ports === undefined || claim.ports === undefined
            ? ports?.size === 0 || claim.ports?.size === 0
              ? ''
              : 'every port'
            : [...ports].filter((port) => claim.ports!.has(port)).join(', ');
        if (shared)
          clashes.push(`destinations[${index}]: ${key} (${shared}) is also in destinations[${claim.index}]`);
      }
      claims.set(key, [...earlier, { index, ports }]);
    }
  });
  return clashes;
}

export interface FileSourceDeps {
  readonly onLoad?: (result: { ok: true; entries: number } | { ok: false; error: MutualError }) => void;
}

/** Loads `file` (throws if the first load fails: start with a good table), then watches it. */
export async function createFileSource(file: string, deps: FileSourceDeps = {}): Promise<DestinationSource> {
  const path = resolve(file);
  const listeners = new Set<() => void>();
  // Several entries may share an address (or name) on different ports: 127.0.0.1 in a loopback mesh.
  let byAddress = new Map<string, DestinationTableEntry[]>();
  let byName = new Map<string, DestinationTableEntry[]>();
  let lastText = '';

  async function load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new MutualError(
        'MUTUAL_IO_READ_FAILED',
        `cannot read the destination table ${path}: ${readFailure(path, error)}`,
        { cause: error },
      );
    }
    if (text === lastText) return;
    const entries = parseDestinationTable(text, path);
    byAddress = groupBy(entries.map((entry) => [entry.address, entry]));
    byName = groupBy(entries.flatMap((entry) => entry.names.map((name) => [name, entry] as const)));
    lastText = text;
    deps.onLoad?.({ ok: true, entries: entries.length });
    for (const listener of listeners) listener();
  }

  await load();
  let debounce: NodeJS.Timeout | undefined;
  // Watch the directory, not the file: atomic writers and Kubernetes replace files by renaming.
  const watcher: FSWatcher = watch(dirname(path), (_event, name) => {
    if (name !== null && name !== basename(path)) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      load().catch((error: unknown) => {
        deps.onLoad?.({ ok: false, error: toMutualError(error) });
      });
    }, 50);
  });

  const answer = (
    entries: readonly DestinationTableEntry[] | undefined,
    port: number,
  ): DestinationAnswer | undefined => {
    if (!entries) return undefined;
    // The entry listing the port, else one for every port, else the port is unknown.
    const entry =
      entries.find((candidate) => candidate.ports?.has(port)) ??
      entries.find((candidate) => candidate.ports === undefined) ??
      entries[0]!;
    const protocol = entry.ports ? entry.ports.get(port) : 'detect';
    if (!protocol) return { meshed: false, reason: 'unknown-port', kind: 'static', name: entry.address };
    return { meshed: true, serverId: entry.serverId, protocol, kind: 'static', name: entry.address };
  };
  return {
    name: 'file',
    resolveAddress: (address, port) => answer(byAddress.get(address), port),
    resolveName: (host, port) => answer(byName.get(host), port),
    // A refused reload keeps the last good table serving: degraded, not unready.
    notReadyReason: () => undefined,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      clearTimeout(debounce);
      watcher.close();
    },
  };
}

function groupBy<T>(pairs: ReadonlyArray<readonly [string, T]>): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const [key, value] of pairs) groups.set(key, [...(groups.get(key) ?? []), value]);
  return groups;
}
