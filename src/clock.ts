// The only caller of Date.now(): everything that depends on time takes a Clock, so tests can
// move time instead of waiting for it.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that stands still until moved; for tests and for `--at TIME` checks. */
export function fixedClock(atMs: number): Clock & { set(ms: number): void; advance(ms: number): void } {
  let current = atMs;
  return {
    now: () => current,
    set: (ms) => {
      current = ms;
    },
    advance: (ms) => {
      current += ms;
    },
  };
}
