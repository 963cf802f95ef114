// Log lines that someone outside the process can cause at will (a peer's connections and requests,
// an API client's refusals): sampled so that a flood cannot fill the disk while the first of each
// kind still appears at once. Owns no sink and no format: callers pass the writer and the lines.
// Must not import any capability (proxy, k8s, identity …): they all import it.

export { LOG_INTERVAL_MS, type SampledLog, type SampledLogOptions, sampledLog } from './sampled-log.ts';
