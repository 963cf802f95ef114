// A directory of policy files, loaded, compiled and watched. Each change (debounced, and a slow
// poll in case the watch misses one) loads the whole directory again; a set with errors is refused
// and the last good one keeps serving (reported through onError). The only I/O in policy/.
import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isMutualError, MutualError } from '../errors.ts';
import { diagnosticsError, type PolicyDiagnostic } from './diagnostic.ts';
import { loadPolicyFiles } from './load.ts';
import { compilePolicySet, type PolicySet } from './policy-set.ts';
import { DEFAULT_ROOT_NAMESPACE } from './resource.ts';
import type { ExplainableWorkloadPolicy, WorkloadRef } from './types.ts';

export interface PolicyStoreOptions {
  readonly directory: string;
  readonly rootNamespace?: string;
  /** Quiet time after the last file event before reloading (default 100 ms). */
  readonly debounceMs?: number;
  /** Safety-net poll for missed watch events (default 5 s; 0 turns it off). */
  readonly pollIntervalMs?: number;
  /** A new set is in force. */
  readonly onChange?: (set: PolicySet, generation: number) => void;
  /** A reload was refused (the last good set stays) or the watch failed. */
  readonly onError?: (error: MutualError, diagnostics: readonly PolicyDiagnostic[]) => void;
}

export interface PolicyStore {
  /** The current compiled policy for a workload; ask again per connection to see changes. */
  forWorkload(ref: WorkloadRef): ExplainableWorkloadPolicy;
  readonly current: PolicySet;
  /** 1 after the first load, +1 for each set put in force. */
  readonly generation: number;
  /** The error of the last refused reload, cleared by a good one. */
  readonly lastError: MutualError | undefined;
  /** Loads the directory now; resolves true when a new set was put in force. */
  reload(): Promise<boolean>;
  close(): Promise<void>;
  destroy(): void;
}

/** Loads the directory once (throws if it has errors: there is no last good set yet), then watches it. */
export async function createPolicyStore(options: PolicyStoreOptions): Promise<PolicyStore> {
  const rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const { directory } = options;
  const info = await stat(directory).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new MutualError(
      'MUTUAL_POLICY_NOT_FOUND',
      `policy directory ${directory} does not exist or is not a directory`,
      {
        detail: { path: directory },
      },
    );
  }
  const first = await loadPolicyFiles([directory], { rootNamespace });
  const firstErrors = first.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  if (firstErrors.length > 0) throw diagnosticsError(firstErrors);

  let current = compilePolicySet(first.resources, { rootNamespace });
  let fingerprint = first.fingerprint;
  let failedFingerprint: string | undefined;
  let generation = 1;
  let lastError: MutualError | undefined;
  let isClosed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<boolean> | undefined;
  let isPending = false;

  const report = (error: MutualError, diagnostics: readonly PolicyDiagnostic[] = []) => {
    lastError = error;
    options.onError?.(error, diagnostics);
  };

  const loadOnce = async (): Promise<boolean> => {
    try {
      // Files as last loaded (good or refused) are not parsed again: the poll runs every few seconds.
      const loaded = await loadPolicyFiles([directory], {
        rootNamespace,
        unlessFingerprint: failedFingerprint ?? fingerprint,
      });
      if (isClosed) return false;
      if ('unchanged' in loaded) {
        // The set in force still matches its files: a reload that works clears a watch error.
        if (failedFingerprint === undefined) lastError = undefined;
        return false;
      }
      const errors = loaded.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
      if (errors.length > 0) {
        // The poll would otherwise report the same broken files every few seconds.
        if (loaded.fingerprint !== failedFingerprint) report(diagnosticsError(errors), errors);
        failedFingerprint = loaded.fingerprint;
        return false;
      }
      failedFingerprint = undefined;
      lastError = undefined;
      if (loaded.fingerprint === fingerprint) return false;
      current = compilePolicySet(loaded.resources, { rootNamespace });
      fingerprint = loaded.fingerprint;
      generation++;
      options.onChange?.(current, generation);
      return true;
    } catch (error) {
      if (!isClosed) {
        report(
          isMutualError(error)
            ? error
            : new MutualError(
                'MUTUAL_POLICY_NOT_FOUND',
                `reloading ${directory} failed: ${(error as Error).message}`,
                {
                  cause: error,
                },
              ),
        );
      }
      return false;
    }
  };

  // One load at a time; events during a load cause exactly one more.
  const reload = async (): Promise<boolean> => {
    if (running) {
      isPending = true;
      return running;
    }
    running = (async () => {
      let changed = await loadOnce();
      while (isPending && !isClosed) {
        isPending = false;
        changed = (await loadOnce()) || changed;
      }
      return changed;
    })();
    try {
      return await running;
    } finally {
      running = undefined;
    }
  };

  const schedule = () => {
    if (isClosed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), options.debounceMs ?? 100);
    timer.unref();
  };

  // Watch the directory, not the files: editors that save by rename replace the file's inode.
  let watcher: FSWatcher | undefined;
  const startWatch = () => {
    try {
      watcher = watch(directory, { persistent: false }, schedule);
      watcher.on('error', (error) => {
        watcher?.close();
        watcher = undefined;
        report(
          new MutualError(
            'MUTUAL_POLICY_NOT_FOUND',
            `watching ${directory} failed: ${error.message}; polling instead`,
            {
              cause: error,
            },
          ),
        );
      });
    } catch (error) {
      report(
        new MutualError('MUTUAL_POLICY_NOT_FOUND', `cannot watch ${directory}: ${(error as Error).message}`),
      );
    }
  };
  startWatch();
  const pollMs = options.pollIntervalMs ?? 5000;
  const poll =
    pollMs > 0
      ? setInterval(() => {
          if (watcher === undefined) startWatch();
          void reload();
        }, pollMs).unref()
      : undefined;

  const stop = () => {
    isClosed = true;
    clearTimeout(timer);
    clearInterval(poll);
    watcher?.close();
  };
  return {
    forWorkload: (ref) => current.forWorkload(ref),
    get current() {
      return current;
    },
    get generation() {
      return generation;
    },
    get lastError() {
      return lastError;
    },
    reload,
    async close() {
      stop();
      await running;
    },
    destroy: stop,
  };
}
