// process_open_fds / process_max_fds, as Prometheus' own process collector names them, read from
// /proc at each scrape: at the limit a Node server's new connections are accepted and closed at
// once by libuv, unseen by the process, so only these gauges show the limit coming.
import { readdirSync, readFileSync } from 'node:fs';
import type * as PromClient from 'prom-client';

let lastMaxFds = Number.NaN;

/** RLIMIT_NOFILE's soft limit (prlimit can change it at run time); the last one read when /proc cannot be read. */
function maxFileDescriptors(): number {
  try {
    const limit = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'))?.[1];
    if (limit !== undefined) lastMaxFds = limit === 'unlimited' ? Number.POSITIVE_INFINITY : Number(limit);
  } catch {}
  return lastMaxFds;
}

/** Open descriptors; when even listing them fails for want of one, all of them (the limit). */
function openFileDescriptors(): number {
  try {
    // The listing holds one descriptor of its own while it reads.
    return readdirSync('/proc/self/fd').length - 1;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? maxFileDescriptors() : Number.NaN;
  }
}

/** Registers both gauges; `holder` names the process in the help text (e.g. "the proxy"). */
export function registerFileDescriptorGauges(
  Gauge: typeof PromClient.Gauge,
  registry: PromClient.Registry,
  holder: string,
): { openFds: PromClient.Gauge; maxFds: PromClient.Gauge } {
  return {
    openFds: new Gauge({
      name: 'process_open_fds',
      help: `File descriptors ${holder} has open (each connection holds one). At process_max_fds, new connections are accepted and closed at once by libuv, unseen by ${holder}.`,
      registers: [registry],
      collect() {
        this.set(openFileDescriptors());
      },
    }),
    maxFds: new Gauge({
      name: 'process_max_fds',
      help: 'The limit on open file descriptors (RLIMIT_NOFILE, ulimit -n), read at each scrape.',
      registers: [registry],
      collect() {
        this.set(maxFileDescriptors());
      },
    }),
  };
}
