// One JSON line per event on stderr: easy to grep, easy for `mutual logs` to show.

export interface ProxyLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function createProxyLog(write: (line: string) => void, now: () => number): ProxyLog {
  const emit = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    write(`${JSON.stringify({ time: new Date(now()).toISOString(), level, msg: message, ...fields })}\n`);
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}
