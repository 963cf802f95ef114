import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer } from 'node:net';

// Where an app of a loopback mesh really listens, read from /proc: the sockets in LISTEN held by
// its process group (the app and whatever it started: `sh -c`, nginx's workers ...). `mutual up`
// uses it to say why an app is not ready (it listens on another port than $PORT) and to warn when
// it listens on every interface, where other machines reach it without its sidecar; `mutual check`
// to say so again for as long as it does.

export interface ListeningSocket {
  /** As written in a URL's host: 127.0.0.1, 0.0.0.0, ::1, :: ... */
  readonly address: string;
  readonly port: number;
}

/** TCP sockets in LISTEN of process group `pgid` (this network namespace's tables), [] if unknown. */
export async function listeningSocketsOf(pgid: number): Promise<ListeningSocket[]> {
  return (await listeningSocketsByGroup([pgid])).get(pgid) ?? [];
}

/**
 * The same for several process groups with one pass over /proc and the socket tables: `mutual
 * check` asks for every app at once, every few seconds under the dashboard.
 */
export async function listeningSocketsByGroup(
  pgids: readonly number[],
): Promise<Map<number, ListeningSocket[]>> {
  const inodesByGroup = new Map<number, Set<string>>(
    pgids.filter((pgid) => pgid > 0).map((pgid) => [pgid, new Set()]),
  );
  for (const [pid, pgid] of await groupMembers(new Set(inodesByGroup.keys()))) {
    const inodes = inodesByGroup.get(pgid)!;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    }
  }
  const socketsByGroup = new Map<number, ListeningSocket[]>(pgids.map((pgid) => [pgid, []]));
  if ([...inodesByGroup.values()].every((inodes) => inodes.size === 0)) return socketsByGroup;
  for (const table of ['tcp', 'tcp6'] as const) {
    const text = await readFile(`/proc/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is field 1, st field 3 (0A = LISTEN), inode field 9.
      if (fields[3] !== '0A') continue;
      const [hexAddress, hexPort] = (fields[1] ?? '').split(':');
      if (!hexAddress || !hexPort) continue;
      for (const [pgid, inodes] of inodesByGroup) {
        if (!inodes.has(fields[9] ?? '')) continue;
        const sockets = socketsByGroup.get(pgid)!;
        const socket = { address: decodeAddress(hexAddress), port: Number.parseInt(hexPort, 16) };
        if (!sockets.some((s) => s.address === socket.address && s.port === socket.port))
          sockets.push(socket);
      }
    }
  }
  for (const sockets of socketsByGroup.values()) sockets.sort((a, b) => a.port - b.port);
  return socketsByGroup;
}

/** `127.0.0.1:8000`, `[::]:8000`. */
export function formatSocket(socket: ListeningSocket): string {
  return socket.address.includes(':')
    ? `[${socket.address}]:${socket.port}`
    : `${socket.address}:${socket.port}`;
}

/** True when nothing listens on 127.0.0.1:`port` (we can bind it for a moment). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** [pid, pgid] of every process in one of `pgids`. */
async function groupMembers(pgids: ReadonlySet<number>): Promise<Array<[number, number]>> {
  if (pgids.size === 0) return [];
  const entries = await readdir('/proc').catch(() => [] as string[]);
  const members: Array<[number, number]> = [];
  await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
        // After the command name's last ')': state, ppid, pgrp.
        const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        if (pgids.has(pgrp)) members.push([Number(entry), pgrp]);
      }),
  );
  return members;
}

/** /proc/net/tcp{,6} hex: IPv4 as one little-endian word, IPv6 as four. */
function decodeAddress(hex: string): string {
  const word = (at: number) =>
    Buffer.from(hex.slice(at, at + 8), 'hex')
      .reverse()
      .toString('hex');
  if (hex.length === 8) return [...Buffer.from(word(0), 'hex')].join('.');
  const bytes = Buffer.from(word(0) + word(8) + word(16) + word(24), 'hex');
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  // Shorten the longest run of zero groups to '::'.
  let best = { at: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.length < 2) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.length).join(':')}`;
}
