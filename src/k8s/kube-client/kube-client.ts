// A small Kubernetes API client over node:https: GET a list (with paging) and stream a watch.
//
// Why not @kubernetes/client-node: its 2.x line depends on @types/node ^26 (our runtime and types
// are Node 24) and pulls in fifteen runtime packages (openid-client, ws, tar-fs, socks, undici…)
// for the two calls the control plane makes. This file is the client production uses, and the
// tests drive it against a local HTTPS server speaking the real API shapes.
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { MutualError } from '../../errors.ts';

/** Where the API server is and how to prove ourselves to it. */
export interface KubeConnection {
  /** e.g. https://10.96.0.1:443 */
  readonly server: string;
  /** PEM roots for the API server; the system roots when absent. */
  readonly caPem?: string;
  /** Read per request: projected ServiceAccount tokens rotate on disk. */
  readonly bearerToken?: () => Promise<string>;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  /** From a kubeconfig's insecure-skip-tls-verify; never set in-cluster. */
  readonly unsafeSkipTlsVerify?: boolean;
}

export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface KubeObject {
  readonly metadata?: ObjectMeta;
}

export interface KubeList<T> {
  readonly items: readonly T[];
  readonly resourceVersion: string;
}

/** One event of a `?watch=1` stream, as the API server sends it (one JSON object per line). */
export type WatchEvent<T> =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; readonly object: T }
  | { readonly type: 'ERROR'; readonly object: { code?: number; reason?: string; message?: string } };

/** One object (or any JSON the API serves, e.g. /version) and the server's clock from the Date header. */
export interface KubeGetResult<T> {
  readonly object: T;
  readonly date: string | undefined;
}

export interface KubeClient {
  readonly server: string;
  /** One object by its path; a 404 rejects with MUTUAL_K8S_API_FAILED and `detail.status` 404. */
  get<T>(path: string): Promise<KubeGetResult<T>>;
  /** Every item of a collection, following `continue` tokens, and the list's resourceVersion. */
  list<T>(path: string): Promise<KubeList<T>>;
  /**
   * Watches a collection from `resourceVersion`, calling `onEvent` per event, until the server
   * ends the stream (resolves), the connection fails or `signal` aborts (rejects).
   */
  watch<T>(
    path: string,
    options: { resourceVersion: string; timeoutSeconds: number },
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

const MAX_LIST_BYTES = 64 * 1024 * 1024;
const MAX_EVENT_BYTES = 4 * 1024 * 1024;
const PAGE_SIZE = 500;

export function createKubeClient(
  connection: KubeConnection,
  options: { timeoutMs?: number } = {},
): KubeClient {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const base = new URL(connection.server);

  async function open(pathAndQuery: string, signal: AbortSignal | undefined, idleMs: number) {
    let bearer: string | undefined;
    try {
      bearer = connection.bearerToken ? (await connection.bearerToken()).trim() : undefined;
    } catch (error) {
      throw apiFailed(`cannot read the API token: ${(error as Error).message}`, { cause: error });
    }
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({
        host: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || 443,
        path: `${base.pathname.replace(/\/$/, '')}${pathAndQuery}`,
        method: 'GET',
        ...(connection.caPem ? { ca: connection.caPem } : {}),
        ...(connection.clientCertPem ? { cert: connection.clientCertPem, key: connection.clientKeyPem } : {}),
        rejectUnauthorized: connection.unsafeSkipTlsVerify !== true,
        headers: {
          accept: 'application/json',
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
        timeout: idleMs,
        signal,
      });
      req.on('timeout', () => req.destroy(new Error(`no data for ${idleMs} ms`)));
      req.on('error', (error) =>
        reject(
          error.name === 'AbortError'
            ? error
            : apiFailed(`cannot reach the Kubernetes API server at ${connection.server}: ${error.message}`, {
                cause: error,
              }),
        ),
      );
      req.on('response', resolve);
      req.end();
    });
  }

  async function readAll(response: IncomingMessage, limit: number): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        response.destroy();
        throw apiFailed(`the API server's answer is larger than ${limit} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function failure(response: IncomingMessage, what: string): Promise<MutualError> {
    const text = await readAll(response, 64 * 1024).catch(() => '');
    let status: { message?: string; reason?: string } = {};
    try {
      status = JSON.parse(text) as typeof status;
    } catch {}
    const code = response.statusCode ?? 0;
    const hint =
      code === 401
        ? ': the API server did not accept our credentials'
        : code === 403
          ? ': RBAC does not allow it (the ServiceAccount or user needs get, list and watch on this resource)'
          : '';
    return apiFailed(
      `${what} answered HTTP ${code}${status.reason ? ` ${status.reason}` : ''}${hint}${status.message ? ` (${status.message})` : ''}`,
      { status: code },
    );
  }

  return {
    server: connection.server,
    async get<T>(path: string): Promise<KubeGetResult<T>> {
      const response = await open(path, AbortSignal.timeout(timeoutMs), timeoutMs);
      if (response.statusCode !== 200) throw await failure(response, `GET ${path}`);
      const date = response.headers.date;
      try {
        return { object: JSON.parse(await readAll(response, MAX_LIST_BYTES)) as T, date };
      } catch (error) {
        if (error instanceof MutualError) throw error;
        throw apiFailed(`GET ${path} did not answer with JSON`, { cause: error });
      }
    },
    async list<T>(path: string): Promise<KubeList<T>> {
      const items: T[] = [];
      let next: string | undefined;
      let resourceVersion = '';
      do {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (next) query.set('continue', next);
        const response = await open(`${path}?${query}`, AbortSignal.timeout(timeoutMs), timeoutMs);
        if (response.statusCode !== 200) throw await failure(response, `GET ${path}`);
        let body: { items?: T[]; metadata?: { resourceVersion?: string; continue?: string } };
        try {
          body = JSON.parse(await readAll(response, MAX_LIST_BYTES)) as typeof body;
        } catch (error) {
          if (error instanceof MutualError) throw error;
          throw apiFailed(`GET ${path} did not answer with JSON`, { cause: error });
        }
        if (!Array.isArray(body.items)) throw apiFailed(`GET ${path} did not answer with a list (no items)`);
        items.push(...body.items);
        resourceVersion = body.metadata?.resourceVersion ?? '';
        next = body.metadata?.continue || undefined;
      } while (next);
      return { items, resourceVersion };
    },
    async watch<T>(
      path: string,
      options: { resourceVersion: string; timeoutSeconds: number },
      onEvent: (event: WatchEvent<T>) => void,
      signal: AbortSignal,
    ): Promise<void> {
      const query = new URLSearchParams({
        watch: '1',
        resourceVersion: options.resourceVersion,
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(options.timeoutSeconds),
      });
      // The server sends bookmarks about once a minute; silence well past the timeout is a dead link.
      const response = await open(`${path}?${query}`, signal, (options.timeoutSeconds + 30) * 1000);
      if (response.statusCode !== 200) throw await failure(response, `watch ${path}`);
      let buffered = '';
      for await (const chunk of response as AsyncIterable<Buffer>) {
        buffered += chunk.toString('utf8');
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf('\n');
          if (line === '') continue;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch (error) {
            response.destroy();
            throw apiFailed(`watch ${path} sent a line that is not JSON`, { cause: error });
          }
          onEvent(event);
        }
        if (buffered.length > MAX_EVENT_BYTES) {
          response.destroy();
          throw apiFailed(`watch ${path} sent an event larger than ${MAX_EVENT_BYTES} bytes`);
        }
      }
    },
  };
}

function apiFailed(message: string, options: { cause?: unknown; status?: number } = {}): MutualError {
  return new MutualError('MUTUAL_K8S_API_FAILED', message, {
    ...(options.cause === undefined ? {} : { cause: options.cause }),
    ...(options.status === undefined ? {} : { detail: { status: options.status } }),
  });
}
