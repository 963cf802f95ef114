// One JSON line per event on stderr: easy to grep, easy for `mutual logs` to show. Warnings a peer
// or the app can cause once per connection or request go through `warnSampled`, so that a loop of
// garbage connections writes a few lines, not one per connection (metrics still count each one).

import { type SampledLog, sampledLog } from '../log/index.ts';

export interface ProxyLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /**
   * A warning someone outside the proxy can cause at will. The first of each `key` (what tells
   * these events apart for an operator: a reason, a policy and a client) is written at once with
   * its fields; the rest are summed up in one line per message and interval,
   * `"<message>: N more in the last 10 s"` with `counts` by key.
   */
  warnSampled(message: string, key: string, fields?: Record<string, unknown>): void;
}

export interface ProxyLogOptions {
  /** 10 s unless a test says otherwise. */
  readonly sampleIntervalMs?: number;
  /** Distinct keys of one message written at once per interval; past that, only counted. */
  readonly maxKeysPerMessage?: number;
}

const MAX_KEYS_PER_MESSAGE = 20;

export function createProxyLog(
  write: (line: string) => void,
  now: () => number,
  options: ProxyLogOptions = {},
): ProxyLog {
  const line = (level: string, message: string, fields?: Record<string, unknown>) =>
    `${JSON.stringify({ time: new Date(now()).toISOString(), level, msg: message, ...fields })}\n`;
  const emit = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    write(line(level, message, fields));
  // One sampler per message: messages are constants in the code, so these are few.
  const samplers = new Map<string, SampledLog<string>>();
  const samplerFor = (message: string) => {
    let sampler = samplers.get(message);
    if (!sampler) {
      sampler = sampledLog<string>({
        log: write,
        intervalMs: options.sampleIntervalMs,
        maxKinds: options.maxKeysPerMessage ?? MAX_KEYS_PER_MESSAGE,
        summary: (counts, total, seconds, unlisted) =>
          line('warn', `${message}: ${total} more in the last ${seconds} s`, {
            more: total,
            counts: Object.fromEntries(counts),
            ...(unlisted > 0 ? { unlisted } : {}),
          }),
      });
      samplers.set(message, sampler);
    }
    return sampler;
  };
  return {
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    warnSampled(message, key, fields) {
      samplerFor(message).report(key, () => line('warn', message, fields));
    },
  };
}

/**
 * A text naming what a peer sent, as a sampling key: quoted input (`the host "…" is not …`) and
 * numbers are blanked out, so that varying them does not make every event a new kind.
 */
export function sampleKeyOf(text: string): string {
  return text
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\d+/g, 'N')
    .slice(0, 200);
}
