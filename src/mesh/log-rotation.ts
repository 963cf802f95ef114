// Every process `up` starts writes its stdout and stderr to STATE/logs/<name>.log itself (the file
// is its descriptor), so nothing bounded them: a soak with 2-minute certificates grew each sidecar
// log by ~130 KB an hour, and an app that logs each request (an access log) fills the disk of a
// mesh left running for days. As the kubelet rotates container logs (containerLogMaxSize, 10 MiB),
// a log past the limit is copied to <name>.log.1 (the previous .1 replaced) and truncated in place,
// logrotate's copytruncate: the process keeps its descriptor, opened with O_APPEND, so its next
// write lands at the new start of the file. What it writes between the copy and the truncation
// (a few milliseconds) is lost, the price of not making every process reopen its log.
import { copyFile, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';

/** Kubernetes' default containerLogMaxSize. */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;
export const LOG_CHECK_INTERVAL_MS = 10_000;

/** Rotates each `*.log` in `logsDir` larger than `maxBytes`; returns the names rotated. */
export async function rotateLogs(logsDir: string, maxBytes = LOG_MAX_BYTES): Promise<string[]> {
  const names = await readdir(logsDir).catch(() => [] as string[]);
  const rotated: string[] = [];
  for (const name of names) {
    if (!name.endsWith('.log')) continue;
    const path = join(logsDir, name);
    try {
      if ((await stat(path)).size <= maxBytes) continue;
      await copyFile(path, `${path}.1`);
      await truncate(path, 0);
      rotated.push(name);
    } catch {
      // Gone (a mesh being stopped) or unreadable: tried again at the next check.
    }
  }
  return rotated;
}

/** Checks the logs every `intervalMs` until the returned function is called. */
export function rotateLogsEvery(
  logsDir: string,
  options: { readonly maxBytes?: number; readonly intervalMs?: number } = {},
): () => void {
  let isRotating = false;
  const timer = setInterval(() => {
    if (isRotating) return;
    isRotating = true;
    void rotateLogs(logsDir, options.maxBytes).finally(() => {
      isRotating = false;
    });
  }, options.intervalMs ?? LOG_CHECK_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
