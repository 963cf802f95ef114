// The KeyUpdate limit lives in src/tls/key-updates.ts (the identity service uses it too); the
// inbound still imports it from here.
export { limitPeerKeyUpdates, PEER_KEY_UPDATES_ALLOWED } from '../tls/key-updates.ts';
