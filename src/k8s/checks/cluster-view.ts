// What the Kubernetes checks read from the cluster, each path fetched once per run and shared:
// /version first (reachability, the server's clock), then objects and lists. Once the API server
// is known to be unreachable every later read is a CheckSkipped, so one failure is reported once.
import type { Clock } from '../../clock.ts';
import { isMutualError } from '../../errors.ts';
import { CheckSkipped } from '../../mesh/checks/index.ts';
import type { KubeClient } from '../kube-client/index.ts';

export interface ServerVersion {
  readonly gitVersion: string;
  /** The Date header of the answer, and this machine's clock around the request. */
  readonly date: string | undefined;
  readonly sentMs: number;
  readonly receivedMs: number;
}

export interface ClusterView {
  /** The API server's address, or where the connection should have come from. */
  readonly server: string;
  /** GET /version, once; rejects with why the API server cannot be reached. */
  version(): Promise<ServerVersion>;
  /** One object, or undefined when it does not exist (404). */
  get<T>(path: string): Promise<T | undefined>;
  list<T>(path: string): Promise<readonly T[]>;
}

const UNREACHABLE = 'the Kubernetes API server is not reachable (see the first check)';

/**
 * A view over a client, or over the reason there is none (a kubeconfig Mutual cannot use): then
 * `version()` rejects with that reason and every other read is skipped.
 */
export function createClusterView(
  target: { client: KubeClient } | { server: string; error: Error },
  clock: Clock,
): ClusterView {
  const cache = new Map<string, Promise<unknown>>();
  let version: Promise<ServerVersion> | undefined;
  const once = <T>(key: string, load: () => Promise<T>): Promise<T> => {
    let answer = cache.get(key) as Promise<T> | undefined;
    if (!answer) {
      answer = load();
      cache.set(key, answer);
    }
    return answer;
  };
  const view: ClusterView = {
    server: 'client' in target ? target.client.server : target.server,
    version() {
      version ??= (async () => {
        if (!('client' in target)) throw target.error;
        const sentMs = clock.now();
        const answer = await target.client.get<{ gitVersion?: string }>('/version');
        return {
          gitVersion: answer.object.gitVersion ?? 'unknown',
          date: answer.date,
          sentMs,
          receivedMs: clock.now(),
        };
      })();
      return version;
    },
    get<T>(path: string) {
      return once(`get ${path}`, async () => {
        const client = await reachable();
        try {
          return (await client.get<T>(path)).object;
        } catch (error) {
          if (isMutualError(error) && error.detail.status === 404) return undefined;
          throw error;
        }
      });
    },
    list<T>(path: string) {
      return once(`list ${path}`, async () => (await (await reachable()).list<T>(path)).items);
    },
  };
  async function reachable(): Promise<KubeClient> {
    try {
      await view.version();
    } catch {
      throw new CheckSkipped(UNREACHABLE);
    }
    return (target as { client: KubeClient }).client;
  }
  return view;
}
