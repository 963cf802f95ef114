// Which snapshots the dashboard keeps: the newest, and over the window one per slot, plus one at
// least a window old (the rates, recent denials and the checks' traffic window compare with it).

/** How many snapshots, one per windowMs / HISTORY_SLOTS, the window keeps besides the newest. */
export const HISTORY_SLOTS = 12;

/**
 * Adds `snapshot` (the newest) to `history` (oldest first), in place. Between the oldest and the
 * newest, one snapshot per slot of the window is kept, not one per refresh: each holds every
 * sidecar's parsed /metrics, which grows with the square of the mesh (a sidecar has series per
 * peer), and 31 of them (2 s refresh, 60 s window) held 350 MB for a 40-service mesh's dashboard.
 * The oldest kept is then up to a slot more than windowMs old.
 */
export function addToHistory<T extends { readonly atMs: number }>(
  history: T[],
  snapshot: T,
  windowMs: number,
): void {
  history.push(snapshot);
  const isSlotTaken =
    history.length >= 3 && history.at(-2)!.atMs - history.at(-3)!.atMs < windowMs / HISTORY_SLOTS;
  if (isSlotTaken) history.splice(-2, 1);
  // Keep one snapshot at least a window old: the checks compare the counters with it.
  while (history.length > 2 && history[1]!.atMs <= snapshot.atMs - windowMs) history.shift();
}
