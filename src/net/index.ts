// Limits on a server's connections that every daemon shares (the injector webhook, the identity and
// destination APIs): how many stay open, how many one client address may hold, and which one goes
// at the cap. Tracks sockets it is given; opens none,
// and knows nothing of what the server answers: its caller names what a request is doing.

export {
  addressKey,
  type ConnectionCapOptions,
  capConnectionsPerAddress,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
} from './connection-cap.ts';
export {
  type ConnectionLimit,
  type ConnectionLimitOptions,
  limitConnections,
  type OpenState,
  type ShedLogOptions,
  type ShedState,
  shedLog,
  shedStateText,
} from './connection-limit.ts';
export { defaultMaxConnections, MAX_DEFAULT_CONNECTIONS } from './descriptor-limit.ts';
