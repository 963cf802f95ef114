// The metrics registry of one process. Every metric is named once, here or beside the code that
// owns it, with its help text, following Prometheus conventions (mutual_<subject>_<what>_<unit>).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

export function createRegistry(): Registry {
  return new Registry();
}
