// Files the injector reads from mounted Secrets and ConfigMaps and follows as they change: the
// directories are watched (so rename-replace and the `..data` symlink swap of Kubernetes volumes
// are seen) and polled as a fallback. A changed value is loaded and checked before it replaces the
// one in use; a bad one is refused with an event (once per distinct problem) and the old one stays.
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import { toMutualError } from '../../errors.ts';

export interface FileReloadEvent {
  readonly result: 'accepted' | 'refused';
  readonly message: string;
  readonly code?: string;
}

export interface WatchedFilesOptions<T> {
  readonly files: readonly string[];
  readonly initial: T;
  /** Reads and checks the files; throws (a MutualError) when they are not usable. */
  readonly load: () => Promise<T>;
  /** Equal fingerprints are not reported as changes. */
  readonly fingerprint: (value: T) => string;
  /** The event message for an accepted value. */
  readonly describe: (value: T) => string;
  readonly onChange: (value: T) => void;
  readonly onEvent: (event: FileReloadEvent) => void;
  /** Changes closer together than this are read once (a Secret update swaps several files). */
  readonly debounceMs?: number;
  /** Also re-read this often, in case a notification was missed; 0 turns it off. */
  readonly pollIntervalMs?: number;
}

export function watchFiles<T>(options: WatchedFilesOptions<T>): { close(): void } {
  let current = options.initial;
  let lastRefused = '';
  let debounce: NodeJS.Timeout | undefined;
  let isClosed = false;
  let running = Promise.resolve();
  const reload = async () => {
    let next: T;
    try {
      next = await options.load();
    } catch (error) {
      const refusal = toMutualError(error);
      // A half-written file is seen once per distinct problem, not on every poll.
      if (refusal.message !== lastRefused && !isClosed) {
        lastRefused = refusal.message;
        options.onEvent({ result: 'refused', message: refusal.message, code: refusal.code });
      }
      return;
    }
    lastRefused = '';
    if (isClosed || options.fingerprint(next) === options.fingerprint(current)) return;
    current = next;
    options.onChange(next);
    options.onEvent({ result: 'accepted', message: options.describe(next) });
  };
  const schedule = () => {
    if (isClosed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      running = running.then(reload);
    }, options.debounceMs ?? 200);
    debounce.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(options.files.map((file) => dirname(file)))) {
    try {
      const watcher = watch(dir, schedule);
      watcher.on('error', () => {});
      watchers.push(watcher);
    } catch {
      // The poll below still sees changes.
    }
  }
  const pollMs = options.pollIntervalMs ?? 30_000;
  const poll = pollMs > 0 ? setInterval(schedule, pollMs) : undefined;
  poll?.unref();
  return {
    close() {
      isClosed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const watcher of watchers) watcher.close();
    },
  };
}
