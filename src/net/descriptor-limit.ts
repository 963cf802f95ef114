// The default cap on a daemon's connections, from its file descriptor limit: every connection
// holds a descriptor, and at the limit libuv accepts and closes new ones unseen, so the cap must
// bite first and leave room for what else the process opens (admin port, files, API calls).
import { readFileSync } from 'node:fs';

/** The most connections the default cap allows, whatever the descriptor limit: ~1.1 GB of TLS state. */
export const MAX_DEFAULT_CONNECTIONS = 16_384;

/** 3/4 of the process's RLIMIT_NOFILE (read once, at the call), at most MAX_DEFAULT_CONNECTIONS; at least 1. */
export function defaultMaxConnections(fileDescriptorLimit = readFileDescriptorLimit()): number {
  if (!Number.isFinite(fileDescriptorLimit)) return MAX_DEFAULT_CONNECTIONS;
  return Math.max(1, Math.min(MAX_DEFAULT_CONNECTIONS, Math.floor((fileDescriptorLimit * 3) / 4)));
}

/** RLIMIT_NOFILE's soft limit from /proc/self/limits; Infinity when unlimited or unreadable. */
function readFileDescriptorLimit(): number {
  try {
    const limit = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'))?.[1];
    if (limit !== undefined && limit !== 'unlimited') return Number(limit);
  } catch {}
  return Number.POSITIVE_INFINITY;
}
