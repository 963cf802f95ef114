import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Closes a spliced connection once no byte has moved either way for `ms` (0: never). */
export interface SpliceIdle {
  readonly ms: number;
  /** Runs once, before the connection closes for being idle. */
  readonly onIdle: () => void;
}

/**
 * Joins two streams both ways with backpressure. A FIN travels across (half-close is kept, so
 * request/response protocols that shut one side still work); an error or reset on either side
 * tears down both, and so does one side closing. `onClose` runs once, when both are gone.
 */
export function splice(a: Duplex, b: Duplex, onClose?: () => void, idle?: SpliceIdle): void {
  // Every byte either way is read from or written to `a`, and Node's socket timer restarts on
  // each (a write stuck behind a peer that does not read restarts nothing): no timer of our own.
  if (idle && idle.ms > 0 && 'setTimeout' in a) {
    (a as Socket).setTimeout(idle.ms, () => {
      idle.onIdle();
      a.destroy();
    });
  }
  a.pipe(b);
  b.pipe(a);
  let open = 2;
  // Once one side is gone, nothing the other sends can go anywhere: it is ended (after what is
  // still queued for it) even when its own FIN already went out, or a peer that never half-closes
  // would hold the connection open forever.
  const closed = (other: Duplex) => (hadError?: boolean) => {
    endSoon(other, hadError === true);
    if (--open === 0) onClose?.();
  };
  a.once('close', closed(b));
  b.once('close', closed(a));
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

function endSoon(stream: Duplex, isAbort: boolean): void {
  if (stream.destroyed) return;
  const socket = stream as Partial<Socket>;
  if (isAbort) {
    if (socket.resetAndDestroy && (stream as unknown as { _handle?: unknown })._handle)
      socket.resetAndDestroy();
    else stream.destroy();
  } else if (socket.destroySoon) socket.destroySoon();
  else stream.end(() => stream.destroy());
}
