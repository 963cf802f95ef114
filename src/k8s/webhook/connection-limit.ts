// A cap on the webhook's open connections that a flood cannot turn against the API server. At the
// cap a new connection is kept and the oldest one doing nothing useful is closed instead: one still
// in its TLS handshake or that never sent a whole request (a slowloris), then one idle between
// requests, then one whose request body is still arriving. Connections whose answer is being
// computed are never closed. Refusing newcomers instead, as net.Server's maxConnections does,
// would let a client holding the cap keep the API server out (under failurePolicy Ignore, pods
// would start without a sidecar).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { sampledLog } from '../../log/index.ts';

/** What a closed connection was doing; `new` when nothing could be closed and the newcomer was. */
export type ShedState = 'handshake' | 'headers' | 'idle' | 'body' | 'new';

export interface ConnectionLimitOptions {
  readonly maxConnections: number;
  /** Each connection closed to stay within the cap (for a metric). */
  readonly onShed: (state: ShedState) => void;
  /** The first closing in each state at once, then at most one line per `logIntervalMs` with the counts. */
  readonly log: (line: string) => void;
  readonly logIntervalMs?: number;
}

export interface ConnectionLimit {
  /** Connections open now. */
  open(): number;
  /** Stops the pending log line (the connections are the server's to close). */
  close(): void;
}

const WHAT: Record<ShedState, string> = {
  handshake: 'in its TLS handshake',
  headers: 'that had not sent a request',
  idle: 'idle between requests',
  body: 'still sending a request body',
  new: 'new (every open one was being answered)',
};

interface Connection {
  readonly socket: Socket;
  readonly remote: string;
  isSecure: boolean;
  /** Requests answered on it so far. */
  served: number;
  /** Requests in progress, and how many of those have their whole body. */
  requests: number;
  answering: number;
}

type Pool = 'fresh' | 'idle' | 'body' | 'busy';

/** Tracks `server`'s connections and keeps at most `maxConnections` open. */
export function limitConnections(server: TlsServer, options: ConnectionLimitOptions): ConnectionLimit {
  const { maxConnections } = options;
  const report = shedReporter(options);
  // Each pool in the order connections entered it: the first is the oldest.
  const pools: Record<Pool, Set<Connection>> = {
    fresh: new Set(),
    idle: new Set(),
    body: new Set(),
    busy: new Set(),
  };
  const poolOf = new Map<Connection, Pool>();
  // The raw socket's address and port, to find its connection once TLS is up (Node gives the TLS
  // socket on its own); both are unique among open connections.
  const handshaking = new Map<string, Connection>();
  const bySocket = new WeakMap<TLSSocket, Connection>();

  const move = (connection: Connection) => {
    const pool: Pool =
      connection.requests === 0
        ? connection.served === 0
          ? 'fresh'
          : 'idle'
        : connection.answering > 0
          ? 'busy'
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
    first(pools.fresh) ?? first(pools.idle) ?? first(pools.body);

  server.on('connection', (socket: Socket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (poolOf.size >= maxConnections) {
      const victim = oldestClosable();
      if (victim === undefined) {
        socket.destroy();
        report.shed('new', remote);
        return;
      }
      const pool = poolOf.get(victim);
      forget(victim);
      victim.socket.destroy();
      report.shed(
        pool === 'fresh' ? (victim.isSecure ? 'headers' : 'handshake') : pool === 'idle' ? 'idle' : 'body',
        victim.remote,
      );
    }
    const connection: Connection = { socket, remote, isSecure: false, served: 0, requests: 0, answering: 0 };
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
  // Before the webhook's handler, so the request is counted before its answer can end.
  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const connection = bySocket.get(request.socket as TLSSocket);
    if (connection === undefined) return;
    let hasBody = false;
    let isAnswered = false;
    connection.requests += 1;
    move(connection);
    request.once('end', () => {
      if (isAnswered) return; // a body drained after its answer
      hasBody = true;
      connection.answering += 1;
      move(connection);
    });
    response.once('close', () => {
      isAnswered = true;
      connection.requests -= 1;
      if (hasBody) connection.answering -= 1;
      connection.served += 1;
      move(connection);
    });
  });
  return { open: () => poolOf.size, close: report.close };
}

/** A line for the first connection closed in each state, then one per interval summing up the others. */
function shedReporter(options: ConnectionLimitOptions) {
  const limit = `the limit of ${options.maxConnections} open connections (--max-connections)`;
  const log = sampledLog<ShedState>({
    log: options.log,
    intervalMs: options.logIntervalMs,
    summary: (counts, total, seconds) =>
      `inject: ${total} more connections closed at ${limit} in the last ${seconds} s: ${[...counts].map(([state, count]) => `${count} ${WHAT[state]}`).join(', ')}\n`,
  });
  return {
    shed(state: ShedState, remote: string) {
      options.onShed(state);
      log.report(state, () => {
        const closed =
          state === 'new'
            ? `closed the new connection from ${remote}`
            : `closed the oldest connection ${WHAT[state]}, from ${remote}, to accept a new one`;
        return `inject: at ${limit}: ${closed}. A client is opening connections it does not use, or the limit is too low for the API server's traffic; mutual_injector_connections_shed_total counts them\n`;
      });
    },
    close: log.close,
  };
}

function first<T>(set: Set<T>): T | undefined {
  for (const item of set) return item;
  return undefined;
}
