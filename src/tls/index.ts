// node:tls contexts built from a workload's credentials, the peer's identity as a value, and the
// plain HTTP answer a TLS server gives an http:// client. Knows the Node TLS traps (setSecureContext
// replaces everything, resumed sessions skip identity checks, a client secureContext silences
// connect() options, a refused TLS socket is destroyed unwritten); holds no sockets of its own.

export {
  createCertificateRequiredServer,
  verifyClientChainsAfterHandshake,
} from './certificate-required-server.ts';
export { CLIENT_HELLO_MAX_BYTES, type ClientHelloScan, scanClientHello } from './client-hello.ts';
export { describeHandshakeError, handshakeErrorReason } from './handshake-error.ts';
export { limitPeerKeyUpdates, PEER_KEY_UPDATES_ALLOWED } from './key-updates.ts';
export { isMeshServerName } from './mesh-server-name.ts';
export {
  createMeshTls,
  MESH_TLS_GROUPS,
  MESH_TLS_MIN_VERSION,
  type MeshCredentials,
  type MeshTls,
  peerChainDer,
  spiffeIdFromSubjectAltName,
} from './mesh-tls.ts';
export type { HandshakeFailureReason, NoTlsReason, PeerTls } from './peer-tls.ts';
export { answerPlainHttp, isPlainHttpError } from './plain-http-answer.ts';
export { serverNameForSpiffeId } from './server-name.ts';
export {
  isOpensslVerifyCode,
  type PeerVerdict,
  reasonFromOpenssl,
  reasonFromVerifyCode,
  requireServerIdentity,
  verifyClientChain,
} from './verify-tls-peer.ts';
