// List + watch one collection into a local cache, the way client-go's reflector does: list (with
// its resourceVersion), watch from there with bookmarks, re-watch from the last version seen when
// the server ends the stream, relist when the version has expired (410 Gone), back off on failures.
import { isMutualError, MutualError } from '../../errors.ts';
import type { KubeClient, KubeObject, WatchEvent } from './kube-client.ts';

export interface InformerDeps {
  readonly client: KubeClient;
  /** Called after the cache changed (a list, or a watch event that added, changed or removed an object). */
  readonly onChange: () => void;
  /** A relist (`reason` expired: 410 Gone) or a failure and its backoff; for logs and metrics. */
  readonly onEvent?: (event: InformerEvent) => void;
  /** The server ends each watch after this long (plus jitter); default 300 s. */
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export type InformerEvent =
  | { readonly kind: 'listed'; readonly objects: number; readonly resourceVersion: string }
  | { readonly kind: 'expired' }
  | { readonly kind: 'failed'; readonly error: MutualError; readonly retryInMs: number };

export interface Informer<T extends KubeObject> {
  /** The cache, keyed by namespace/name. */
  readonly objects: ReadonlyMap<string, T>;
  readonly hasSynced: boolean;
  readonly resourceVersion: string | undefined;
  start(): void;
  close(): void;
}

export function objectKey(object: KubeObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

class WatchExpired extends Error {}

export function createInformer<T extends KubeObject>(path: string, deps: InformerDeps): Informer<T> {
  const objects = new Map<string, T>();
  const backoff = deps.backoff ?? { initialMs: 250, maxMs: 30_000 };
  const timeoutSeconds = deps.watchTimeoutSeconds ?? 300;
  const abort = new AbortController();
  let resourceVersion: string | undefined;
  let hasSynced = false;
  let isClosed = false;
  let wake: (() => void) | undefined;

  function apply(event: WatchEvent<T>) {
    if (event.type === 'ERROR') {
      const status = event.object;
      if (status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone')
        throw new WatchExpired();
      throw new MutualError(
        'MUTUAL_K8S_API_FAILED',
        `watch ${path} reported an error: ${status.code ?? ''} ${status.reason ?? ''} ${status.message ?? ''}`.trim(),
      );
    }
    const version = event.object.metadata?.resourceVersion;
    if (event.type === 'BOOKMARK') {
      if (version) resourceVersion = version;
      return;
    }
    if (event.type === 'DELETED') objects.delete(objectKey(event.object));
    else if (event.type === 'ADDED' || event.type === 'MODIFIED')
      objects.set(objectKey(event.object), event.object);
    else return;
    if (version) resourceVersion = version;
    deps.onChange();
  }

  async function relist() {
    const list = await deps.client.list<T>(path);
    objects.clear();
    for (const item of list.items) objects.set(objectKey(item), item);
    resourceVersion = list.resourceVersion;
    hasSynced = true;
    deps.onEvent?.({ kind: 'listed', objects: objects.size, resourceVersion: list.resourceVersion });
    deps.onChange();
  }

  async function run() {
    let failures = 0;
    while (!isClosed) {
      try {
        if (resourceVersion === undefined) await relist();
        // Jitter spreads many watchers' reconnects apart.
        const timeout = Math.round(timeoutSeconds * (1 + Math.random() * 0.1));
        await deps.client.watch<T>(
          path,
          { resourceVersion: resourceVersion!, timeoutSeconds: timeout },
          apply,
          abort.signal,
        );
        failures = 0;
      } catch (error) {
        if (isClosed) return;
        if (error instanceof WatchExpired || (isMutualError(error) && error.detail.status === 410)) {
          // Our version is older than the server keeps: start over from a fresh list.
          resourceVersion = undefined;
          deps.onEvent?.({ kind: 'expired' });
          continue;
        }
        failures++;
        const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures - 1, 16));
        const retryInMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        const failure = isMutualError(error)
          ? error
          : new MutualError('MUTUAL_K8S_API_FAILED', `watch ${path}: ${(error as Error).message}`, {
              cause: error,
            });
        deps.onEvent?.({ kind: 'failed', error: failure, retryInMs });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, retryInMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  }

  return {
    objects,
    get hasSynced() {
      return hasSynced;
    },
    get resourceVersion() {
      return resourceVersion;
    },
    start() {
      void run();
    },
    close() {
      isClosed = true;
      abort.abort();
      wake?.();
    },
  };
}
