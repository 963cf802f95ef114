// The traffic check judges recent traffic, not lifetime counters: the increase of each counter
// since a sample taken `windowMs` ago (kept in <state-dir>/traffic-samples.json by `mutual check`
// and `mutual edges`, or in memory by the dashboard). Counter resets count as restarts from zero.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDuration } from '../../config/index.ts';
import { EDGE_METRICS, type ProxySamples } from '../edges.ts';
import type { Sample } from '../prometheus-text.ts';
import type { MeshPaths, MeshRuntime } from '../runtime.ts';

/** Every sidecar's counters at one moment. */
export interface TrafficSample {
  readonly atMs: number;
  readonly proxies: readonly ProxySamples[];
}

/** What the windowed counters cover, stated in `mutual check` and on the dashboard. */
export interface TrafficWindow {
  readonly windowSeconds: number;
  /** Seconds the compared counters actually cover; null when they are lifetime counters. */
  readonly coveredSeconds: number | null;
  /**
   * `sample`: compared with a sample from about a window ago; `mesh-start`: the mesh started within
   * the window, so its counters are all recent; `partial`: the oldest sample is younger than the
   * window; `lifetime`: no earlier sample, counters since the sidecars started.
   */
  readonly basis: 'sample' | 'mesh-start' | 'partial' | 'lifetime';
  readonly description: string;
}

const SAMPLES_FILE = 'traffic-samples.json';
/** Samples older than this are dropped (or the window, if longer). */
const RETENTION_MS = 3_600_000;

/** `45 s` under two minutes, `1h 30m` above. */
const span = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : formatDuration(ms));

const seriesKey = (sample: Sample) =>
  `${sample.name}{${Object.keys(sample.labels)
    .sort()
    .map((key) => `${key}=${JSON.stringify(sample.labels[key])}`)
    .join(',')}}`;

/**
 * Handshakes a sidecar refused, by direction and reason. Not an edge (a refused client has no
 * identity and the counter no port), so the traffic checks judge it per sidecar.
 */
export const HANDSHAKE_FAILURES_METRIC = 'mutual_tls_handshake_failures_total';

/** Only the counters the traffic checks read (edges, refused handshakes), so stored samples stay small. */
export function edgeCounters(proxies: readonly ProxySamples[]): ProxySamples[] {
  return proxies.map(({ service, samples }) => ({
    service,
    samples: samples.filter(
      (sample) => EDGE_METRICS.has(sample.name) || sample.name === HANDSHAKE_FAILURES_METRIC,
    ),
  }));
}

/** Per sidecar, the inbound handshakes it refused in `recent` (increases), by reason; only sidecars that refused some. */
export function refusedHandshakes(recent: readonly ProxySamples[]): RefusedHandshakes[] {
  return recent.flatMap(({ service, samples }) => {
    const reasons: Record<string, number> = {};
    for (const sample of samples) {
      if (sample.name !== HANDSHAKE_FAILURES_METRIC || sample.labels.direction !== 'inbound') continue;
      const reason = sample.labels.reason || 'unknown';
      reasons[reason] = (reasons[reason] ?? 0) + sample.value;
    }
    return Object.keys(reasons).length > 0 ? [{ service, reasons }] : [];
  });
}

export interface RefusedHandshakes {
  readonly service: string;
  readonly reasons: Readonly<Record<string, number>>;
}

/**
 * Each counter's increase since `baseline` (Prometheus `increase()` without extrapolation): a
 * counter lower than before was reset and counts from zero; series that did not move are dropped.
 * A sidecar missing from the baseline (it did not answer then) counts in full.
 */
export function increaseSince(
  current: readonly ProxySamples[],
  baseline: readonly ProxySamples[] | undefined,
): ProxySamples[] {
  const before = new Map((baseline ?? []).map(({ service, samples }) => [service, samples]));
  return current.map(({ service, samples }) => {
    const earlier = new Map((before.get(service) ?? []).map((sample) => [seriesKey(sample), sample.value]));
    return {
      service,
      samples: samples.flatMap((sample) => {
        const was = earlier.get(seriesKey(sample)) ?? 0;
        const increase = sample.value >= was ? sample.value - was : sample.value;
        return increase > 0 ? [{ ...sample, value: increase }] : [];
      }),
    };
  });
}

/** Picks what to compare `now` with, and says what that covers. */
export function chooseBaseline(
  history: readonly TrafficSample[],
  options: { nowMs: number; windowMs: number; meshStartedMs: number | undefined },
): { baseline: TrafficSample | undefined; window: TrafficWindow } {
  const { nowMs, windowMs, meshStartedMs } = options;
  const windowSeconds = Math.round(windowMs / 1000);
  const usable = history
    .filter((sample) => sample.atMs < nowMs && (meshStartedMs === undefined || sample.atMs >= meshStartedMs))
    .sort((a, b) => a.atMs - b.atMs);
  const old = usable.filter((sample) => sample.atMs <= nowMs - windowMs).at(-1);
  const window = (basis: TrafficWindow['basis'], coveredMs: number | null, description: string) => ({
    windowSeconds,
    coveredSeconds: coveredMs === null ? null : Math.round(coveredMs / 1000),
    basis,
    description,
  });
  const last = `the last ${span(windowMs)} of traffic`;
  if (old) {
    const coveredMs = nowMs - old.atMs;
    return {
      baseline: old,
      window: window(
        'sample',
        coveredMs,
        coveredMs - windowMs < 1000 ? last : `${last} (compared with a sample from ${span(coveredMs)} ago)`,
      ),
    };
  }
  if (meshStartedMs !== undefined && meshStartedMs >= nowMs - windowMs) {
    const coveredMs = Math.max(0, nowMs - meshStartedMs);
    return {
      baseline: undefined,
      window: window('mesh-start', coveredMs, `${last} (the mesh started ${span(coveredMs)} ago)`),
    };
  }
  const young = usable[0];
  if (young) {
    const coveredMs = nowMs - young.atMs;
    return {
      baseline: young,
      window: window(
        'partial',
        coveredMs,
        `the last ${span(coveredMs)} of traffic only (the oldest sample kept; the window is ${span(windowMs)})`,
      ),
    };
  }
  return {
    baseline: undefined,
    window: window(
      'lifetime',
      null,
      `all traffic since the sidecars started (no sample from ${span(windowMs)} ago yet; the next run compares with this one)`,
    ),
  };
}

/**
 * Version 2: every label set once, samples naming it by its index. Version 1 wrote each sample's
 * labels in full: 2.9 MB a sample for a 40-service mesh whose services all call each other, and
 * after an hour of `watch mutual check` (41 samples kept) every run read and wrote ~120 MB.
 */
interface StoredSamples {
  readonly version: 2;
  /** runtime.json's startedAt: samples of an earlier mesh are not compared with this one. */
  readonly meshStartedAt: string;
  readonly names: readonly string[];
  readonly labelSets: ReadonlyArray<Readonly<Record<string, string>>>;
  readonly samples: ReadonlyArray<{
    atMs: number;
    /** [index in names, index in labelSets, value] */
    proxies: ReadonlyArray<{ service: string; samples: ReadonlyArray<[number, number, number]> }>;
  }>;
}

/** What version 1 wrote: read still, so an upgrade does not lose the window. */
interface StoredSamplesV1 {
  readonly version: 1;
  readonly meshStartedAt: string;
  readonly samples: ReadonlyArray<{
    atMs: number;
    proxies: ReadonlyArray<{
      service: string;
      samples: ReadonlyArray<[string, Record<string, string>, number]>;
    }>;
  }>;
}

const samplesPath = (paths: MeshPaths) => join(paths.stateDir, SAMPLES_FILE);

/** The samples kept for the running mesh; none when the file is missing, unreadable or older. */
export async function readTrafficSamples(paths: MeshPaths, runtime: MeshRuntime): Promise<TrafficSample[]> {
  try {
    const stored = JSON.parse(await readFile(samplesPath(paths), 'utf8')) as StoredSamples | StoredSamplesV1;
    if (stored.meshStartedAt !== runtime.startedAt) return [];
    if (stored.version === 1) {
      return stored.samples.map(({ atMs, proxies }) => ({
        atMs,
        proxies: proxies.map(({ service, samples }) => ({
          service,
          samples: samples.map(([name, labels, value]) => ({ name, labels, value })),
        })),
      }));
    }
    if (stored.version !== 2) return [];
    const { names, labelSets } = stored;
    return stored.samples.map(({ atMs, proxies }) => ({
      atMs,
      proxies: proxies.map(({ service, samples }) => ({
        service,
        samples: samples.flatMap(([name, labels, value]) =>
          names[name] === undefined || labelSets[labels] === undefined
            ? []
            : [{ name: names[name], labels: labelSets[labels], value }],
        ),
      })),
    }));
  } catch {
    return [];
  }
}

/**
 * Adds `sample` to the kept samples. Older samples are thinned (each at least a tenth of its age,
 * and 5 s, apart from the next kept one), so an hour fits in a few dozen; samples from the future
 * (an injected clock) are dropped. Best effort: a state directory that cannot be written is left alone.
 */
export async function recordTrafficSample(
  paths: MeshPaths,
  runtime: MeshRuntime,
  sample: TrafficSample,
  options: { windowMs?: number } = {},
): Promise<void> {
  const retentionMs = Math.max(RETENTION_MS, 2 * (options.windowMs ?? 0));
  const nowMs = sample.atMs;
  const earlier = (await readTrafficSamples(paths, runtime))
    .filter((old) => old.atMs < nowMs && old.atMs >= nowMs - retentionMs)
    .sort((a, b) => a.atMs - b.atMs);
  const kept: TrafficSample[] = [];
  for (const old of earlier) {
    const last = kept.at(-1);
    if (!last || old.atMs - last.atMs >= Math.max(5000, (nowMs - old.atMs) / 10)) kept.push(old);
  }
  kept.push(sample);
  // Each name and label set once, whether it came from this scrape or the file (same content,
  // other objects): keyed by identity first, by content when the object is new.
  const names: string[] = [];
  const nameIndex = new Map<string, number>();
  const labelSets: Array<Readonly<Record<string, string>>> = [];
  const byObject = new Map<Readonly<Record<string, string>>, number>();
  const byContent = new Map<string, number>();
  const indexOfName = (name: string) => {
    let at = nameIndex.get(name);
    if (at === undefined) {
      at = names.push(name) - 1;
      nameIndex.set(name, at);
    }
    return at;
  };
  const indexOfLabels = (labels: Readonly<Record<string, string>>) => {
    let at = byObject.get(labels);
    if (at !== undefined) return at;
    const content = JSON.stringify(labels);
    at = byContent.get(content);
    if (at === undefined) {
      at = labelSets.push(labels) - 1;
      byContent.set(content, at);
    }
    byObject.set(labels, at);
    return at;
  };
  const samples = kept.map(({ atMs, proxies }) => ({
    atMs,
    proxies: edgeCounters(proxies).map(({ service, samples }) => ({
      service,
      samples: samples.map(
        ({ name, labels, value }) =>
          [indexOfName(name), indexOfLabels(labels), value] as [number, number, number],
      ),
    })),
  }));
  const stored: StoredSamples = { version: 2, meshStartedAt: runtime.startedAt, names, labelSets, samples };
  const file = samplesPath(paths);
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(stored)}\n`, { mode: 0o600 });
    await rename(temporary, file);
  } catch {
    // A read-only state directory: the next run falls back to what it has, and says so.
  }
}
