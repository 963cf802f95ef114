import { type ErrorCode, MutualError } from '../errors.ts';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000,
  d: 24 * 60 * 60 * 1000,
  y: 365 * 24 * 60 * 60 * 1000,
};
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|y)/y;

/**
 * Parses durations as users write them for certificates: `24h`, `90m`, `1h30m`, `3650d`, `10y`.
 * A bare number is refused: "24" could mean hours or seconds, and a wrong guess makes a
 * certificate that lives 3600 times too long.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const input = text.trim();
  let totalMs = 0;
  PART.lastIndex = 0;
  let matchedUpTo = 0;
  while (matchedUpTo < input.length) {
    const match = PART.exec(input);
    if (!match) break;
    totalMs += Number(match[1]) * UNIT_MS[match[2]!]!;
    matchedUpTo = PART.lastIndex;
  }
  if (input === '' || matchedUpTo !== input.length || !Number.isFinite(totalMs)) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${what} ${JSON.stringify(text)} is not a duration: write a number with a unit, e.g. 30s, 90m, 24h, 365d, 10y or 1h30m`,
    );
  }
  return totalMs;
}

export interface DurationBounds {
  /** Inclusive lower bound, as users write it, e.g. `1s`. */
  readonly atLeast: string;
  /** Inclusive upper bound, as users write it, e.g. `90d`. */
  readonly atMost: string;
  /** The code to throw; MUTUAL_CLI_USAGE unless the domain has its own. */
  readonly code?: ErrorCode;
}

/**
 * parseDuration with limits, reported as the user wrote the value and as the limit is usually
 * written (`--ttl "9999d" is longer than the maximum of 365d`), never in milliseconds.
 */
export function parseDurationWithin(text: string, what: string, bounds: DurationBounds): number {
  const ms = parseDuration(text, what);
  const minMs = parseDuration(bounds.atLeast);
  const maxMs = parseDuration(bounds.atMost);
  const fix = `give ${bounds.atLeast} to ${bounds.atMost}`;
  if (ms < minMs) {
    throw new MutualError(
      bounds.code ?? 'MUTUAL_CLI_USAGE',
      `${what} ${JSON.stringify(text)} is too short: ${fix}${/\dm$/.test(text.trim()) ? ' (m is minutes; for months write days, e.g. 90d)' : ''}`,
    );
  }
  if (ms > maxMs) {
    throw new MutualError(
      bounds.code ?? 'MUTUAL_CLI_USAGE',
      `${what} ${JSON.stringify(text)} is longer than the maximum of ${bounds.atMost}: ${fix}`,
    );
  }
  return ms;
}

/**
 * Formats a duration for people: the two largest units, e.g. "23h 59m" or "364d 23h". Days start
 * at 48h, so a 24h certificate reads "24h 0m" rather than "1d 0h".
 */
export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(Math.round(ms / 1000));
  const units: Array<readonly [string, number]> = [
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ];
  if (rest >= 2 * 86400) units.unshift(['d', 86400]);
  const parts: string[] = [];
  for (const [unit, seconds] of units) {
    const count = Math.floor(rest / seconds);
    rest -= count * seconds;
    if (count > 0 || parts.length > 0) parts.push(`${count}${unit}`);
    if (parts.length === 2) break;
  }
  return sign + (parts.length === 0 ? '0s' : parts.join(' '));
}
