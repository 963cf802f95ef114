/** One sample of the Prometheus text exposition format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;

/**
 * Names and label sets seen before, shared by every page parsed since: the dashboard keeps a
 * minute of every sidecar's samples, and a sidecar has series per peer, so a 40-service mesh's
 * snapshot held ~22,000 label sets, nearly all the same as the last one's. A fresh object per
 * sample, and V8's substrings that keep the whole page they were cut from alive, cost ~10 MB per
 * snapshot. Emptied when full (peers that come and go), so it stays bounded.
 */
const interned = new Map<string, string | Readonly<Record<string, string>>>();
const MAX_INTERNED = 50_000;

/** A copy that does not keep the page it was cut from alive. */
function detached(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

function internedName(name: string): string {
  const key = `n${name}`;
  const found = interned.get(key);
  if (typeof found === 'string') return found;
  const copy = detached(name);
  remember(detached(key), copy);
  return copy;
}

function internedLabels(body: string): Readonly<Record<string, string>> {
  const key = `l${body}`;
  const found = interned.get(key);
  if (found !== undefined && typeof found !== 'string') return found;
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  let label: RegExpExecArray | null;
  // biome-ignore lint/suspicious/noAssignInExpressions: the usual sticky-regex loop
  while ((label = LABEL.exec(body)) !== null) {
    labels[detached(label[1]!)] = detached(
      label[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)),
    );
  }
  // Shared by every sample with this label set: nobody may change it.
  const frozen = Object.freeze(labels);
  remember(detached(key), frozen);
  return frozen;
}

function remember(key: string, value: string | Readonly<Record<string, string>>): void {
  if (interned.size >= MAX_INTERNED) interned.clear();
  interned.set(key, value);
}

/** Parses the samples of a /metrics page (comments and malformed lines are skipped). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (Number.isNaN(value)) continue;
    samples.push({ name: internedName(match[1]!), labels: internedLabels(match[2] ?? ''), value });
  }
  return samples;
}
