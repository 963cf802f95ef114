// A cap on a TLS server's open connections that a flood cannot turn against its real clients. At
// the cap a new connection is kept and the oldest one doing nothing useful is closed instead: one
// still in its TLS handshake or that never sent a whole request (a slowloris), then one idle
// between requests, then one whose answer its server holds back on purpose (a long poll, which
// its client simply sends again), then one whose request body is still arriving. Connections
// whose answer is being computed are never closed. Refusing newcomers instead, as net.Server's
// maxConnections does, would let a client holding the cap keep every other client out.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { sampledLog } from '../log/index.ts';

/** What a closed connection was doing; `new` when nothing could be closed and the newcomer was. */
export type ShedState = 'handshake' | 'headers' | 'idle' | 'held' | 'body' | 'new';

/** What an open connection is doing: a ShedState but `new`, or `answering` (never closed). */
export type OpenState = Exclude<ShedState, 'new'> | 'answering';

export interface ConnectionLimitOptions {
  readonly maxConnections: number;
  /** Each connection closed to stay within the cap, with the client's address and port. */
  readonly onShed: (state: ShedState, remote: string) => void;
}

export interface ConnectionLimit {
  /** Connections open now. */
  open(): number;
  /** Connections open now by what they are doing (counted when asked: for a gauge). */
  openByState(): Record<OpenState, number>;
  /**
   * Marks `request` as held on purpose (a long poll waiting for a change): its connection may be
   * closed at the cap like an idle one. Call the returned function when its answer is being made.
   */
  hold(request: IncomingMessage): () => void;
}

interface Connection {
  readonly socket: Socket;
  readonly remote: string;
  isSecure: boolean;
  /** Requests answered on it so far. */
  served: number;
  /** Requests in progress; of those, being answered (whole body, not held) and held. */
  requests: number;
  answering: number;
  held: number;
}

interface RequestState {
  hasBody: boolean;
  isHeld: boolean;
  isAnswered: boolean;
}

type Pool = 'fresh' | 'idle' | 'held' | 'body' | 'busy';

/** Tracks `server`'s connections and keeps at most `maxConnections` open. */
export function limitConnections(server: TlsServer, options: ConnectionLimitOptions): ConnectionLimit {
  const { maxConnections } = options;
  // Each pool in the order connections entered it: the first is the oldest.
  const pools: Record<Pool, Set<Connection>> = {
    fresh: new Set(),
    idle: new Set(),
    held: new Set(),
    body: new Set(),
    busy: new Set(),
  };
  const poolOf = new Map<Connection, Pool>();
  // The raw socket's address and port, to find its connection once TLS is up (Node gives the TLS
  // socket on its own); both are unique among open connections.
  const handshaking = new Map<string, Connection>();
  const bySocket = new WeakMap<TLSSocket, Connection>();
  // Each request in progress: whether its body is whole, whether it is held, whether it is answered.
  const requestStates = new WeakMap<IncomingMessage, RequestState>();

  const move = (connection: Connection) => {
    const pool: Pool =
      connection.requests === 0
        ? connection.served === 0
          ? 'fresh'
          : 'idle'
        : connection.answering > 0
          ? 'busy'
          : connection.held > 0
            ? 'held'
            : 'body';
    const current = poolOf.get(connection);
    if (current === undefined) return; // already closed
    pools[current].delete(connection);
    pools[pool].add(connection);
    poolOf.set(connection, pool);
  };
  const forget = (connection: Connection) => {
    const pool = poolOf.get(connection);
    if (pool === undefined) return;
    pools[pool].delete(connection);
    poolOf.delete(connection);
    handshaking.delete(connection.remote);
  };
  const oldestClosable = (): Connection | undefined =>
    first(pools.fresh) ?? first(pools.idle) ?? first(pools.held) ?? first(pools.body);
  const stateOf = (connection: Connection, pool: Pool): OpenState =>
    pool === 'fresh' ? (connection.isSecure ? 'headers' : 'handshake') : pool === 'busy' ? 'answering' : pool;

  server.on('connection', (socket: Socket) => {
    // Closed by an earlier listener (a per-address cap): it takes no room.
    if (socket.destroyed) return;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (poolOf.size >= maxConnections) {
      const victim = oldestClosable();
      if (victim === undefined) {
        socket.destroy();
        options.onShed('new', remote);
        return;
      }
      const state = stateOf(victim, poolOf.get(victim)!) as ShedState;
      forget(victim);
      victim.socket.destroy();
      options.onShed(state, victim.remote);
    }
    const connection: Connection = {
      socket,
      remote,
      isSecure: false,
      served: 0,
      requests: 0,
      answering: 0,
      held: 0,
    };
    pools.fresh.add(connection);
    poolOf.set(connection, 'fresh');
    handshaking.set(remote, connection);
    socket.once('close', () => forget(connection));
  });
  server.on('secureConnection', (tls: TLSSocket) => {
    const remote = `${tls.remoteAddress}:${tls.remotePort}`;
    const connection = handshaking.get(remote);
    if (connection === undefined) return;
    handshaking.delete(remote);
    connection.isSecure = true;
    bySocket.set(tls, connection);
    move(connection); // the handshake's end counts as its last sign of life
  });
  // Before the server's handler, so the request is counted before its answer can end.
  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const connection = bySocket.get(request.socket as TLSSocket);
    if (connection === undefined) return;
    const state: RequestState = { hasBody: false, isHeld: false, isAnswered: false };
    requestStates.set(request, state);
    connection.requests += 1;
    move(connection);
    request.once('end', () => {
      if (state.isAnswered || state.hasBody) return; // a body drained after its answer
      state.hasBody = true;
      if (!state.isHeld) connection.answering += 1;
      move(connection);
    });
    response.once('close', () => {
      state.isAnswered = true;
      connection.requests -= 1;
      if (state.isHeld) connection.held -= 1;
      else if (state.hasBody) connection.answering -= 1;
      connection.served += 1;
      move(connection);
    });
  });
  return {
    open: () => poolOf.size,
    openByState() {
      const counts: Record<OpenState, number> = {
        handshake: 0,
        headers: 0,
        idle: 0,
        held: 0,
        body: 0,
        answering: 0,
      };
      for (const [connection, pool] of poolOf) counts[stateOf(connection, pool)] += 1;
      return counts;
    },
    hold(request) {
      const connection = bySocket.get(request.socket as TLSSocket);
      const state = requestStates.get(request);
      if (connection === undefined || state === undefined || state.isHeld || state.isAnswered)
        return () => {};
      state.isHeld = true;
      if (state.hasBody) connection.answering -= 1;
      connection.held += 1;
      move(connection);
      return () => {
        if (!state.isHeld || state.isAnswered) return;
        // Being answered from now on, whether or not its (empty) body was read.
        state.isHeld = false;
        state.hasBody = true;
        connection.held -= 1;
        connection.answering += 1;
        move(connection);
      };
    },
  };
}

/** What a connection closed in each state was doing, as the log lines and refusals say it. */
const SHED_STATE_TEXT: Record<ShedState, string> = {
  handshake: 'in its TLS handshake',
  headers: 'that had not sent a request',
  idle: 'idle between requests',
  held: 'holding a long poll',
  body: 'still sending a request body',
  new: 'new (every open one was being answered)',
};

/** What a connection closed in `state` was doing, in words ("idle between requests"). */
export function shedStateText(state: ShedState): string {
  return SHED_STATE_TEXT[state];
}

export interface ShedLogOptions {
  /** Where the lines go, and the word each line starts with (`inject`). */
  readonly log: (line: string) => void;
  readonly prefix: string;
  readonly maxConnections: number;
  /** The flag that sets the cap (`--max-connections`), named in each line. */
  readonly flag: string;
  /** The end of the first line: what it may mean and which metric counts it. */
  readonly advice: string;
  readonly logIntervalMs?: number;
}

/** A line for the first connection closed in each state, then one per interval summing up the others. */
export function shedLog(options: ShedLogOptions) {
  const limit = `the limit of ${options.maxConnections} open connections (${options.flag})`;
  const log = sampledLog<ShedState>({
    log: options.log,
    intervalMs: options.logIntervalMs,
    summary: (counts, total, seconds) =>
      `${options.prefix}: ${total} more connections closed at ${limit} in the last ${seconds} s: ${[...counts].map(([state, count]) => `${count} ${SHED_STATE_TEXT[state]}`).join(', ')}\n`,
  });
  return {
    report(state: ShedState, remote: string) {
      log.report(state, () => {
        const closed =
          state === 'new'
            ? `closed the new connection from ${remote}`
            : `closed the oldest connection ${SHED_STATE_TEXT[state]}, from ${remote}, to accept a new one`;
        return `${options.prefix}: at ${limit}: ${closed}. ${options.advice}\n`;
      });
    },
    close: log.close,
  };
}

function first<T>(set: Set<T>): T | undefined {
  for (const item of set) return item;
  return undefined;
}
