import type { Socket } from 'node:net';
import { loadOrigdstAddon } from '../intercept/original-destination.ts';

/**
 * A mesh connection whose oldest unacknowledged bytes have been retransmitted this many times in a
 * row is given up: with Linux's 200 ms minimum RTO doubling each time, about 25 s on a LAN, longer
 * where round trips are. TCP keepalive only probes idle connections: a request written into a
 * pooled connection whose peer had just vanished was retransmitted for about 15 minutes
 * (tcp_retries2) while the app waited. Packet loss does not come close (7 losses in a row of one
 * segment; at 5% loss requests took at most 0.7 s). TCP_USER_TIMEOUT would bound it too, but also
 * aborts a live peer that holds its window at 0 (an app that stops reading, measured: cut at the
 * timeout), where window probes are answered and this count stays 0.
 */
export const MESH_RETRANSMITS_ALLOWED = 7;
const CHECK_INTERVAL_MS = 5_000;

interface TcpInfoAddon {
  tcpRetransmits?(fd: number): number;
}

let addon: TcpInfoAddon | undefined | null;
const watched = new Map<Socket, () => void>();
let timer: NodeJS.Timeout | undefined;

function tcpInfoAddon(): TcpInfoAddon | null {
  if (addon === undefined) {
    const loaded = loadOrigdstAddon();
    addon = loaded instanceof Error ? null : (loaded as unknown as TcpInfoAddon);
  }
  return addon;
}

function checkAll(): void {
  const read = tcpInfoAddon()?.tcpRetransmits;
  if (!read) return;
  for (const [socket, onDead] of watched) {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) continue;
    let retransmits: number;
    try {
      retransmits = read(fd);
    } catch {
      continue;
    }
    if (retransmits < MESH_RETRANSMITS_ALLOWED) continue;
    watched.delete(socket);
    onDead();
    socket.destroy(
      Object.assign(
        new Error(
          `the peer stopped acknowledging: ${retransmits} retransmissions in a row unanswered (gone or partitioned)`,
        ),
        { code: 'ETIMEDOUT' },
      ),
    );
  }
}

/**
 * Watches a connected socket until it closes: once its peer has left data unacknowledged through
 * MESH_RETRANSMITS_ALLOWED retransmissions, `onDead` runs and the socket is destroyed (ETIMEDOUT).
 * False where it cannot watch (no native addon: `npm run build:native` builds it, and transparent
 * mode needs it anyway; or one built before it could read TCP_INFO): keepalive alone applies then.
 */
export function watchRetransmissions(socket: Socket, onDead: () => void = () => {}): boolean {
  if (!tcpInfoAddon()?.tcpRetransmits) return false;
  watched.set(socket, onDead);
  socket.once('close', () => {
    watched.delete(socket);
    if (watched.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  });
  timer ??= setInterval(checkAll, CHECK_INTERVAL_MS).unref();
  return true;
}
