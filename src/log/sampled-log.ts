// Log lines a hostile client can cause at will (connections shed at the cap, plain HTTP, malformed
// requests, refused handshakes): the first of each kind is written at once, with its details; the
// rest of that kind are counted and summed up in one line per interval, so that a flood cannot fill
// the log while an operator still sees the first one as it happens. Kinds that carry a client's
// name are bounded too: past `maxKinds` distinct kinds in an interval, new ones are only counted.

export const LOG_INTERVAL_MS = 10_000;
const MAX_KINDS = 100;

/** `Line` is what the sink takes: a text line, or a structured entry (the identity service's audit log). */
export interface SampledLogOptions<Kind extends string, Line = string> {
  readonly log: (line: Line) => void;
  readonly intervalMs?: number;
  /** Distinct kinds logged at once (and counted by name) per interval; further kinds are `unlisted`. */
  readonly maxKinds?: number;
  /**
   * The summary of the events counted in the last interval (called only when there were some):
   * counts by kind, their total, and how many of that total were of kinds past `maxKinds`.
   */
  readonly summary: (
    counts: ReadonlyMap<Kind, number>,
    total: number,
    intervalSeconds: number,
    unlisted: number,
  ) => Line;
}

export interface SampledLog<Kind extends string, Line = string> {
  /** Writes `line()` when no event of this kind was logged in the last interval; counts it otherwise. */
  report(kind: Kind, line: () => Line): void;
  /** Stops the pending summary (what it would have summed up is dropped). */
  close(): void;
}

export function sampledLog<Kind extends string, Line = string>(
  options: SampledLogOptions<Kind, Line>,
): SampledLog<Kind, Line> {
  const intervalMs = options.intervalMs ?? LOG_INTERVAL_MS;
  const maxKinds = options.maxKinds ?? MAX_KINDS;
  const quiet = new Set<Kind>();
  let counts = new Map<Kind, number>();
  let unlisted = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    quiet.clear();
    if (counts.size === 0 && unlisted === 0) {
      timer = undefined;
      return;
    }
    const total = [...counts.values()].reduce((sum, count) => sum + count, unlisted);
    options.log(options.summary(counts, total, intervalMs / 1000, unlisted));
    for (const kind of counts.keys()) quiet.add(kind);
    counts = new Map();
    unlisted = 0;
    timer = setTimeout(flush, intervalMs).unref();
  };
  return {
    report(kind, line) {
      if (quiet.has(kind)) {
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        return;
      }
      timer ??= setTimeout(flush, intervalMs).unref();
      if (quiet.size >= maxKinds) {
        unlisted += 1;
        return;
      }
      options.log(line());
      quiet.add(kind);
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
