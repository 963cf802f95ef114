// Stops reading an HTTP/1 client connection served by node:http, and starts again, without undoing
// node:http's own pause or having it undo ours. Used to cap the pipelined requests read ahead of
// their answers (see http-forward.ts); nothing here decides when.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** node:http's own fields on a connection it serves. */
type ServedSocket = Socket & {
  _paused: boolean;
  parser?: { pause(): void; resume(): void } | null;
  _handle?: { reading: boolean; readStart(): number } | null;
};

interface ReadHold {
  isHeld: boolean;
  /** node:http's own pause, for answers piling up unsent. */
  isPausedByNode: boolean;
  /** node:http's headers timeout fired while held (see deferHeadTimeout). */
  isHeadTimeoutDeferred: boolean;
  /** Reading resumed with the head it timed incomplete, and no request parsed since. */
  isHeadOverdue: boolean;
}

const readHolds = new WeakMap<object, ReadHold>();

/**
 * Stops reading `socket` until releaseReading. node:http pauses a connection itself (its `_paused`,
 * for answers piling up unsent) and resumes it when its outgoing bytes drain or a request body is
 * read, checking `_paused` before each. So the hold is folded into that flag: node:http sees its
 * connection paused while either wants it, and its own resume undoes only its own pause. Node
 * still parses the rest of the chunk it was reading (64 KB at most).
 */
export function holdReading(socket: Socket): void {
  const served = socket as ServedSocket;
  let hold = readHolds.get(socket);
  if (!hold) {
    const state: ReadHold = {
      isHeld: false,
      isPausedByNode: served._paused,
      isHeadTimeoutDeferred: false,
      isHeadOverdue: false,
    };
    Object.defineProperty(served, '_paused', {
      configurable: true,
      enumerable: true,
      get: () => state.isPausedByNode || state.isHeld,
      set: (isPaused: boolean) => {
        state.isPausedByNode = isPaused;
      },
    });
    // node:http restarts the reads it stopped from its own 'resume' listener, which an upgrade drops:
    // upgraded while held, the connection was never read again (its new owner's resume finds
    // Readable's read already pending). This does the same for an upgraded one.
    socket.on('resume', () => {
      const handle = served._handle;
      if (served.parser != null || !handle || handle.reading) return;
      handle.reading = true;
      handle.readStart();
    });
    readHolds.set(socket, state);
    hold = state;
  }
  if (hold.isHeld) return;
  hold.isHeld = true;
  // As node:http pauses: the socket now, its parser (seeing `_paused`) once this chunk is parsed.
  socket.pause();
}

/** Reads `socket` again, unless node:http holds it too (it resumes it once its answers drain). */
export function releaseReading(socket: Socket, server: Server): void {
  const hold = readHolds.get(socket);
  if (!hold?.isHeld) return;
  hold.isHeld = false;
  const served = socket as ServedSocket;
  const parser = served.parser;
  // Upgraded (no parser: the bytes are another protocol's now) or gone.
  if (!parser || socket.destroyed) return;
  if (hold.isHeadTimeoutDeferred) {
    hold.isHeadTimeoutDeferred = false;
    hold.isHeadOverdue = true;
    // The rest of the head was waiting in the kernel: it gets the whole timeout again, no more.
    const state = hold;
    setTimeout(() => {
      if (served.parser !== parser || !state.isHeadOverdue || deferHeadTimeout(socket)) return;
      const error = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
      server.emit('clientError', error, socket);
    }, server.headersTimeout).unref();
  }
  if (hold.isPausedByNode) return;
  parser.resume();
  socket.resume();
}

/**
 * Whether node:http's headers timeout on `socket` is to be ignored for now: the head it timed is
 * incomplete because the proxy stopped reading, its rest waiting in the kernel, not because the
 * client is slow. It is timed again once reading resumes (node:http times a head only once).
 */
export function deferHeadTimeout(socket: Socket): boolean {
  const hold = readHolds.get(socket);
  if (!hold?.isHeld) return false;
  hold.isHeadTimeoutDeferred = true;
  return true;
}

/** A request was parsed on `socket`: a head whose timeout was deferred is complete. */
export function noteRequestParsed(socket: Socket): void {
  const hold = readHolds.get(socket);
  if (hold) hold.isHeadOverdue = false;
}
