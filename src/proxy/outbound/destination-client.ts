// The proxy's client for the destination service (`--destination-url`): one HTTP/2 connection,
// mTLS with the proxy's own SVID, the service verified by its SPIFFE ID (mesh-api-client.ts).
// Answers are cached for a TTL and kept fresh by one long poll per destination in use. A lookup waits at most
// `lookupTimeoutMs`; after a failure the service is skipped for `retryAfterFailureMs`, so an
// unreachable service never holds connections up: the destination is then unknown (plain text,
// or refused under --outbound-strict) and counted.
import type { Clock } from '../../clock.ts';
import { MutualError } from '../../errors.ts';
import { Counter, type Registry } from '../../metrics/index.ts';
import type { MeshTls } from '../../tls/index.ts';
import { createMeshApiClient, destinationServerId } from '../mesh-api-client.ts';
import type { ProxyLog } from '../proxy-log.ts';
import type { DestinationResolver, MeshedDestination } from './destinations.ts';

export interface DestinationClientOptions {
  /** e.g. https://mutual-destination.mutual-system.svc:8086 */
  readonly url: string;
  /** The service's SPIFFE ID; default spiffe://<our trust domain>/ns/mutual-system/sa/destination. */
  readonly serverId?: string;
  readonly meshTls: () => MeshTls | undefined;
  readonly clock: Clock;
  readonly log: ProxyLog;
  readonly registry: Registry;
  readonly lookupTimeoutMs?: number;
  readonly ttlMs?: number;
  readonly retryAfterFailureMs?: number;
  /** How long each long poll asks the service to hold; default 30 s. */
  readonly watchWaitS?: number;
  readonly maxWatches?: number;
}

/** The answer as the service sends it (docs/destination.md). */
interface WireAnswer {
  readonly meshed: boolean;
  readonly serverId?: string;
  readonly protocol?: string;
  readonly version: string;
}

interface CacheEntry {
  answer: WireAnswer;
  freshUntilMs: number;
  lastUsedMs: number;
}

const MAX_ANSWER_BYTES = 64 * 1024;
const MAX_CACHE_ENTRIES = 10_000;
const IDLE_MS = 5 * 60_000;

export function createDestinationClient(
  options: DestinationClientOptions,
): DestinationResolver & { close(): void } {
  const { clock, log } = options;
  const lookupTimeoutMs = options.lookupTimeoutMs ?? 1_000;
  const ttlMs = options.ttlMs ?? 60_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
  const watchWaitS = options.watchWaitS ?? 30;
  const maxWatches = options.maxWatches ?? 256;
  const lookups = new Counter({
    name: 'mutual_outbound_destination_lookups_total',
    help: 'Destination lookups for transparent outbound, by result: cached, answered (by the destination service), unavailable (no answer in time: treated as unknown).',
    labelNames: ['result'],
    registers: [options.registry],
  });
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<MeshedDestination | undefined>>();
  let unavailableUntilMs = 0;
  let watches = 0;
  let isClosed = false;

  const api = createMeshApiClient({
    url: options.url,
    serverId: (meshTls) => options.serverId ?? destinationServerId(meshTls),
    meshTls: options.meshTls,
    clock,
    maxAnswerBytes: MAX_ANSWER_BYTES,
  });
  const get = api.get;

  function parseAnswer(text: string): WireAnswer {
    const answer = JSON.parse(text) as WireAnswer;
    if (typeof answer?.meshed !== 'boolean' || typeof answer.version !== 'string') {
      throw new Error('the answer has no meshed/version fields');
    }
    if (answer.meshed && typeof answer.serverId !== 'string')
      throw new Error('a meshed answer without serverId');
    return answer;
  }

  function pathFor(key: string, query = '') {
    return `/v1/destinations/${encodeURIComponent(key)}${query}`;
  }

  async function fetchAnswer(
    key: string,
    query: string,
    timeoutMs: number,
  ): Promise<WireAnswer | 'unchanged'> {
    const { status, text } = await get(pathFor(key, query), timeoutMs);
    if (status === 304) return 'unchanged';
    if (status !== 200) {
      let message = text.slice(0, 200);
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {}
      throw new Error(`HTTP ${status}: ${message}`);
    }
    return parseAnswer(text);
  }

  async function watch(key: string, entry: CacheEntry) {
    watches++;
    let failures = 0;
    try {
      while (!isClosed && cache.get(key) === entry && clock.now() - entry.lastUsedMs < IDLE_MS) {
        try {
          const query = `?wait=${watchWaitS}s&version=${encodeURIComponent(entry.answer.version)}`;
          const next = await fetchAnswer(key, query, (watchWaitS + 10) * 1000);
          if (next !== 'unchanged') entry.answer = next;
          entry.freshUntilMs = clock.now() + ttlMs;
          failures = 0;
        } catch {
          if (isClosed) return;
          // The entry ages out by its TTL; keep trying, slower each time.
          failures++;
          const delayMs = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
          await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
        }
      }
      if (cache.get(key) === entry && !isClosed) cache.delete(key);
    } finally {
      watches--;
    }
  }

  function toDestination(answer: WireAnswer, address: string, port: number): MeshedDestination | undefined {
    if (!answer.meshed || !answer.serverId) return undefined;
    return {
      serverId: answer.serverId,
      host: address,
      port,
      ...(answer.protocol === 'opaque' ? { opaque: true } : {}),
    };
  }

  async function lookup(key: string, address: string, port: number): Promise<MeshedDestination | undefined> {
    try {
      const answer = await fetchAnswer(key, '', lookupTimeoutMs);
      if (answer === 'unchanged') throw new Error('HTTP 304 without a version');
      const now = clock.now();
      if (cache.size >= MAX_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
      const entry: CacheEntry = { answer, freshUntilMs: now + ttlMs, lastUsedMs: now };
      cache.set(key, entry);
      if (watches < maxWatches) void watch(key, entry);
      lookups.inc({ result: 'answered' });
      return toDestination(answer, address, port);
    } catch (error) {
      if (clock.now() >= unavailableUntilMs) {
        const failure = new MutualError(
          'MUTUAL_DESTINATION_UNAVAILABLE',
          `no answer from the destination service at ${options.url} about ${key}: ${(error as Error).message}`,
          { cause: error },
        );
        log.warn('destination service unavailable; destinations are unknown for a while', {
          code: failure.code,
          error: failure.message,
          retryInMs: retryAfterFailureMs,
        });
      }
      unavailableUntilMs = clock.now() + retryAfterFailureMs;
      lookups.inc({ result: 'unavailable' });
      return undefined;
    }
  }

  return {
    resolve(address, port) {
      const key = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
      const now = clock.now();
      const cached = cache.get(key);
      if (cached && now < cached.freshUntilMs) {
        cached.lastUsedMs = now;
        lookups.inc({ result: 'cached' });
        return toDestination(cached.answer, address, port);
      }
      if (now < unavailableUntilMs || isClosed) {
        lookups.inc({ result: 'unavailable' });
        return undefined;
      }
      let pending = inFlight.get(key);
      if (!pending) {
        pending = lookup(key, address, port).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
    close() {
      isClosed = true;
      cache.clear();
      api.close();
    },
  };
}
