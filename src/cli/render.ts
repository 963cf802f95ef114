import { formatDuration } from '../config/index.ts';

/** Aligned "label  value" lines, the way `mutual` prints one object. */
export function renderFields(fields: ReadonlyArray<readonly [string, string]>, indent = '  '): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) => `${indent}${label.padEnd(width)}  ${value}\n`).join('');
}

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** ISO time without milliseconds, e.g. 2026-11-24T08:07:06Z. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "expires in 23h 59m" / "expired 2d 1h ago" / "not valid for another 3h 0m". */
export function describeValidity(notBeforeMs: number, notAfterMs: number, nowMs: number): string {
  if (nowMs < notBeforeMs) return `not valid for another ${formatDuration(notBeforeMs - nowMs)}`;
  if (nowMs > notAfterMs) return `EXPIRED ${formatDuration(nowMs - notAfterMs)} ago`;
  return `expires in ${formatDuration(notAfterMs - nowMs)}`;
}

/** Colon-separated upper-case hex, as openssl prints fingerprints. */
export function colonHex(hex: string): string {
  return (hex.toUpperCase().match(/.{2}/g) ?? []).join(':');
}
