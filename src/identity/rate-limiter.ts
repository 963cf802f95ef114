import type { Clock } from '../clock.ts';

export interface RateLimit {
  /** Requests allowed at once. */
  readonly burst: number;
  /** Requests regained per second. */
  readonly perSecond: number;
}

/** A workload renews every few hours; these bounds stop a runaway or hostile one, not a normal one. */
export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 20, perSecond: 2 };
const MAX_TRACKED_KEYS = 100_000;

/** A token bucket per key (identity). Returns 0 when allowed, else the seconds to wait. */
export function createRateLimiter(limit: RateLimit, clock: Clock) {
  const buckets = new Map<string, { tokens: number; updatedMs: number }>();
  return {
    take(key: string): number {
      const now = clock.now();
      let bucket = buckets.get(key);
      if (!bucket) {
        if (buckets.size >= MAX_TRACKED_KEYS) buckets.delete(buckets.keys().next().value as string);
        bucket = { tokens: limit.burst, updatedMs: now };
        buckets.set(key, bucket);
      }
      bucket.tokens = Math.min(
        limit.burst,
        bucket.tokens + ((now - bucket.updatedMs) / 1000) * limit.perSecond,
      );
      bucket.updatedMs = now;
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.ceil((1 - bucket.tokens) / limit.perSecond);
    },
  };
}
