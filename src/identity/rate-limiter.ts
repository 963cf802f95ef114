import type { Clock } from '../clock.ts';

export interface RateLimit {
  /** Requests allowed at once. */
  readonly burst: number;
  /** Requests regained per second. */
  readonly perSecond: number;
}

/** A workload renews every few hours; these bounds stop a runaway or hostile one, not a normal one. */
export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 20, perSecond: 2 };

/**
 * Failed authentications per client address. Each bad token costs a signature check, and with
 * --token-review-url a TokenReview call to the Kubernetes API server, so a flood of bad tokens
 * would otherwise be passed on to the API server one for one.
 * - burst 20: sidecars on one node share an address (loopback in a one-machine mesh, the node's
 *   address for hostNetwork pods), so when a bad token file fails a node's sidecars at once, 20
 *   of them are told why at once and the rest within a few seconds; a flood gets no further;
 * - 5 per second after that: sidecars retry failed certifications with backoff (1 s doubling to
 *   30 s, full jitter), so 100 sidecars with bad tokens settle near 100 / 15 s ≈ 7 a second; a
 *   429 costs no verification and tells each when to come back (Retry-After, about 1 s), so the
 *   5 checks a second are shared among them instead of one sidecar starving the others, and a
 *   sidecar whose token is good gets in within a few seconds. An attacker gets at most 5
 *   TokenReviews a second per address, down from as many as it can send.
 * A successful authentication costs nothing (its token is given back), so healthy workloads,
 * however many share an address, never use this budget up. `mutual identity serve` changes them
 * with --auth-failure-burst and --auth-failure-limit.
 */
export const DEFAULT_AUTH_FAILURE_LIMIT: RateLimit = { burst: 20, perSecond: 5 };

const MAX_TRACKED_KEYS = 100_000;

export interface RateLimiter {
  /** Takes one request's token: 0 when allowed, else the whole seconds to wait (Retry-After). */
  take(key: string): number;
  /** Gives back a token taken by `take` (the request turned out not to count). */
  giveBack(key: string): void;
  /** How many keys are tracked now. */
  size(): number;
}

/**
 * A token bucket per key (an identity, or a client address). Memory stays bounded under a flood
 * of new keys: buckets are kept least recently used first; a bucket untouched long enough to
 * have refilled is the same as no bucket and is dropped, and past `maxKeys` the least recently
 * used bucket goes (that key starts afresh with a full burst).
 */
export function createRateLimiter(
  limit: RateLimit,
  clock: Clock,
  options: { maxKeys?: number } = {},
): RateLimiter {
  const maxKeys = options.maxKeys ?? MAX_TRACKED_KEYS;
  const refillMs = (limit.burst / limit.perSecond) * 1000;
  const buckets = new Map<string, { tokens: number; updatedMs: number }>();
  const evict = (now: number) => {
    for (const [key, bucket] of buckets) {
      if (buckets.size <= maxKeys && now - bucket.updatedMs < refillMs) break;
      buckets.delete(key);
    }
  };
  return {
    take(key) {
      const now = clock.now();
      evict(now);
      let bucket = buckets.get(key);
      if (bucket) {
        buckets.delete(key);
        bucket.tokens = Math.min(
          limit.burst,
          bucket.tokens + (Math.max(0, now - bucket.updatedMs) / 1000) * limit.perSecond,
        );
      } else {
        bucket = { tokens: limit.burst, updatedMs: now };
      }
      bucket.updatedMs = now;
      // Re-inserted at the end: the map's order is least recently used first.
      buckets.set(key, bucket);
      if (buckets.size > maxKeys) evict(now);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.ceil((1 - bucket.tokens) / limit.perSecond);
    },
    giveBack(key) {
      const bucket = buckets.get(key);
      if (bucket) bucket.tokens = Math.min(limit.burst, bucket.tokens + 1);
    },
    size: () => buckets.size,
  };
}
