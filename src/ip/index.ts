// IP addresses as text: one canonical spelling for every way an address can be written (an
// IPv4-mapped IPv6 address is its IPv4 address), and whether one is loopback. Pure: parses
// strings, never opens a socket or resolves a name, so callers compare, key and match addresses alike.

export { canonicalIp, isLoopbackIp } from './ip-address.ts';
