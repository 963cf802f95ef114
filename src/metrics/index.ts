// The metrics registry of one process. Every metric is named once, here or beside the code that
// owns it, with its help text, following Prometheus conventions (mutual_<subject>_<what>_<unit>).
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import { registerFileDescriptorGauges as registerFdGauges } from './file-descriptors.ts';

// prom-client's index also loads its default process metrics, the Pushgateway client, Summary
// (tdigest) and, for its CPU metric, @opentelemetry/api, none of which Mutual uses: ~1 MB of
// every sidecar's heap. The four classes are loaded alone (the same modules the index exports).
const load = createRequire(import.meta.url);
export const Counter: typeof PromClient.Counter = load('prom-client/lib/counter.js');
export type Counter<T extends string = string> = PromClient.Counter<T>;
export const Gauge: typeof PromClient.Gauge = load('prom-client/lib/gauge.js');
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export const Histogram: typeof PromClient.Histogram = load('prom-client/lib/histogram.js');
export type Histogram<T extends string = string> = PromClient.Histogram<T>;
export const Registry: typeof PromClient.Registry = load('prom-client/lib/registry.js');
export type Registry = PromClient.Registry;

/** process_open_fds and process_max_fds in `registry`; `holder` names the process in their help. */
export function registerFileDescriptorGauges(registry: Registry, holder: string) {
  return registerFdGauges(Gauge, registry, holder);
}

export function createRegistry(): Registry {
  return new Registry();
}
