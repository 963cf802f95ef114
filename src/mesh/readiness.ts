import { request } from 'node:http';
import { connectApp } from '../proxy/index.ts';

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** One GET over plain HTTP on loopback; rejects on connection errors and after `timeoutMs`. */
export function httpGet(url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: response.headers,
        }),
      );
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    // Where the sidecar looks for it: 127.0.0.1, or ::1 for an app on IPv6 loopback alone.
    const socket = connectApp(port);
    socket.once('connect', () => {
      resolve(true);
      // Leave as a client would: closing with a server-speaks-first app's greeting unread resets
      // the connection (RST), and an app without a socket 'error' handler dies of it. So read and
      // discard, say FIN, and let the app close; an app that keeps it open is cut off after a second.
      socket.on('error', () => {});
      socket.resume();
      socket.end();
      setTimeout(() => socket.destroy(), 1_000).unref();
    });
    socket.once('error', () => resolve(false));
  });
}

/** `unreachable`: a pod's app listens, but only where its sidecar cannot reach it. */
export type WaitOutcome =
  | { ok: true }
  | { ok: false; reason: 'timeout' | 'exited' | 'unreachable'; last: string };

/**
 * Polls until `probe` says ready, the process is gone (`isAlive` false), or the deadline passes.
 * Polling is quick at first and slows to 200 ms, so a fast start is seen fast.
 */
async function pollUntil(
  probe: () => Promise<string | undefined>,
  options: { deadlineMs: number; isAlive: () => boolean },
): Promise<WaitOutcome> {
  let last = 'not tried yet';
  let delayMs = 10;
  for (;;) {
    const problem = await probe();
    if (problem === undefined) return { ok: true };
    last = problem;
    if (!options.isAlive()) return { ok: false, reason: 'exited', last };
    if (Date.now() >= options.deadlineMs) return { ok: false, reason: 'timeout', last };
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(200, delayMs * 2);
  }
}

/** Waits for GET `url` to answer 200. */
export function waitForHttpReady(
  url: string,
  options: { deadlineMs: number; isAlive: () => boolean },
): Promise<WaitOutcome> {
  return pollUntil(async () => {
    try {
      const answer = await httpGet(url, 1000);
      return answer.status === 200 ? undefined : `${url} answered ${answer.status} ${answer.body.trim()}`;
    } catch (error) {
      return `${url}: ${(error as Error).message}`;
    }
  }, options);
}

/** Waits for something to accept TCP connections on 127.0.0.1:`port` (or [::1]:`port`). */
export function waitForTcp(
  port: number,
  options: { deadlineMs: number; isAlive: () => boolean },
): Promise<WaitOutcome> {
  return pollUntil(
    async () =>
      (await tcpAccepts(port))
        ? undefined
        : `nothing accepts connections on 127.0.0.1:${port} or [::1]:${port}`,
    options,
  );
}
