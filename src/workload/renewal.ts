/** Renew at this share of the lifetime (ghostunnel and SPIRE renew around half; Linkerd at 70%). */
export const RENEW_AT_FRACTION = 0.7;
export const MIN_RENEW_DELAY_MS = 10_000;
export const MAX_RENEW_DELAY_MS = 24 * 60 * 60 * 1000;

/** When to renew a certificate valid over [notBefore, notAfter], as a delay from now. */
export function renewalDelayMs(notBeforeMs: number, notAfterMs: number, nowMs: number): number {
  const renewAtMs = notBeforeMs + (notAfterMs - notBeforeMs) * RENEW_AT_FRACTION;
  const delayMs = renewAtMs - nowMs;
  // A certificate already past its renewal point (e.g. the service was down) is renewed soon,
  // but never in a tight loop; and even a 1-year certificate is renewed within a day.
  const upperMs = Math.min(MAX_RENEW_DELAY_MS, Math.max(0, notAfterMs - nowMs));
  return Math.max(Math.min(delayMs, upperMs), Math.min(MIN_RENEW_DELAY_MS, upperMs / 2));
}

/** Exponential backoff with full jitter: attempt 0 waits up to `baseMs`, doubling to `maxMs`. */
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceilingMs = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(baseMs / 2, Math.round(random() * ceilingMs));
}

/**
 * The wait before retry `attempt` after a failure: the backoff, but never sooner than the server's
 * Retry-After (a 429 says when a retry can succeed), plus up to 20% jitter so clients told the
 * same time do not all come back at once; never longer than `maxMs`.
 */
export function retryDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const backoffMs = backoffDelayMs(attempt, baseMs, maxMs, random);
  if (retryAfterMs === undefined) return backoffMs;
  return Math.min(maxMs, Math.max(backoffMs, Math.round(retryAfterMs * (1 + 0.2 * random()))));
}

/** The longest a renewal's certify call may wait on a silent identity service. */
export const CERTIFY_TIMEOUT_MS = 10_000;
/** … and the shortest, however close the certificate is to its end. */
export const MIN_CERTIFY_TIMEOUT_MS = 2_000;

/**
 * How long one certify call may wait: a third of the validity left (bounded to 2–10 s), so a
 * short-lived certificate gets several tries before it expires. With 30 s certificates renewed at
 * 70%, one 10 s wait on an unreachable service outlasted the 9 s left: the certificate expired
 * before the first failure was even reported. No certificate yet (or an expired one): 10 s.
 */
export function certifyTimeoutMs(notAfterMs: number | undefined, nowMs: number): number {
  if (notAfterMs === undefined || notAfterMs <= nowMs) return CERTIFY_TIMEOUT_MS;
  return Math.min(CERTIFY_TIMEOUT_MS, Math.max(MIN_CERTIFY_TIMEOUT_MS, Math.floor((notAfterMs - nowMs) / 3)));
}
