// The app is reached on loopback at its port, where it may listen on 127.0.0.1 or on ::1 alone:
// Node (since 17) binds `listen(port, 'localhost')` to ::1 only where localhost resolves to ::1
// first (Debian, macOS, a Kubernetes pod's /etc/hosts), and such an app got 502s through its
// sidecar while `curl localhost:PORT` reached it. Both are tried, 127.0.0.1 first (Node's own
// happy eyeballs): a refused 127.0.0.1 costs one more connect on a new connection to such an app.
import { connect, type LookupFunction, type Socket } from 'node:net';

const LOOPBACK_ADDRESSES = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];

const lookupLoopback = ((_hostname, options, callback) => {
  if (options.all)
    (callback as (error: null, addresses: typeof LOOPBACK_ADDRESSES) => void)(null, LOOPBACK_ADDRESSES);
  else callback(null, '127.0.0.1', 4);
}) as LookupFunction;

/** How long a connect to the app may take: loopback answers at once, unless its backlog is full. */
const APP_CONNECT_TIMEOUT_MS = 10_000;

/** A connection to the app's `port` on loopback: 127.0.0.1, or ::1 when that refuses. */
export function connectApp(port: number, options: { readonly allowHalfOpen?: boolean } = {}): Socket {
  const socket = connect({
    host: 'localhost',
    port,
    lookup: lookupLoopback,
    autoSelectFamily: true,
    // Only a refusal moves on to ::1: a slow 127.0.0.1 (a full backlog) is waited for.
    autoSelectFamilyAttemptTimeout: APP_CONNECT_TIMEOUT_MS,
    ...options,
  });
  // Both refused: Node reports an AggregateError with an empty message; say what each said.
  socket.prependListener('error', (error: Error) => {
    if (error instanceof AggregateError && error.message === '')
      error.message = error.errors.map((each: Error) => each.message).join('; ');
  });
  return socket;
}

type ConnectCallback = (...args: [null, Socket] | [Error, null]) => void;

/**
 * An undici `connect` function for a pool to the app's `port` (connectApp, with undici's own
 * defaults that matter here: no Nagle, a connect timeout).
 */
export function appConnector(port: number) {
  return (_options: unknown, callback: ConnectCallback): Socket => {
    const socket = connectApp(port);
    socket.setNoDelay(true);
    let isSettled = false;
    const settle = (error: Error | null) => {
      clearTimeout(timer);
      if (isSettled) return;
      isSettled = true;
      if (error) callback(error, null);
      else callback(null, socket);
    };
    const timer = setTimeout(
      () =>
        socket.destroy(
          new Error(`connect to the app on port ${port} timed out after ${APP_CONNECT_TIMEOUT_MS / 1000} s`),
        ),
      APP_CONNECT_TIMEOUT_MS,
    );
    socket.once('connect', () => settle(null));
    socket.once('error', (error) => settle(error));
    socket.once('close', () => clearTimeout(timer));
    return socket;
  };
}
