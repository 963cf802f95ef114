// The server name (SNI) a TLS ClientHello asks for, read from a connection's first bytes before
// any TLS stack sees them (RFC 8446 §4.1.2, RFC 6066 §3). Pure, and safe on hostile bytes: every
// length is checked against the one around it and against what has arrived, nothing is copied
// unless the ClientHello is split over records, and the work is bounded by CLIENT_HELLO_MAX_BYTES.

export type ClientHelloScan =
  /** The bytes so far are a consistent start of a ClientHello: more could settle it. */
  | { readonly kind: 'incomplete' }
  /** No ClientHello this reader takes: malformed, larger than the bound, or a name that is no host name. */
  | { readonly kind: 'unreadable' }
  /** `serverName` (lower case) when the ClientHello names a host; undefined when it names none. */
  | { readonly kind: 'client-hello'; readonly serverName: string | undefined };

/**
 * Bytes worth reading for a ClientHello's name. Browsers' ClientHellos, post-quantum key shares
 * included, are under 2 KiB; OpenSSL only splits one over records beyond 16 KiB.
 */
export const CLIENT_HELLO_MAX_BYTES = 16 * 1024;
/** Records a ClientHello may be split over here: real stacks use one; tiny records only cost work. */
const MAX_RECORDS = 16;
const MAX_RECORD_LENGTH = 16 * 1024;
/** A host name (RFC 6066: ASCII, IDNs as A-labels); `_` as OpenSSL and curl send it. */
const HOST_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/;

const INCOMPLETE: ClientHelloScan = { kind: 'incomplete' };
const UNREADABLE: ClientHelloScan = { kind: 'unreadable' };

/** Thrown by the cursor: `INCOMPLETE` past what has arrived, `UNREADABLE` past a declared length. */
class Stop {
  readonly scan: ClientHelloScan;
  constructor(scan: ClientHelloScan) {
    this.scan = scan;
  }
}

/** Reads `bytes[pos, end)`, where `end` is a declared length that may lie beyond what has arrived. */
class Cursor {
  private readonly bytes: Buffer;
  private pos: number;
  private readonly end: number;

  constructor(bytes: Buffer, pos: number, end: number) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  get isAtEnd(): boolean {
    return this.pos >= this.end;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new Stop(UNREADABLE);
    if (this.pos + n > this.bytes.length) throw new Stop(INCOMPLETE);
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const value = this.bytes.readUInt16BE(this.pos);
    this.pos += 2;
    return value;
  }

  skip(n: number): void {
    if (this.pos + n > this.end) throw new Stop(UNREADABLE);
    this.pos += n;
  }

  /** A cursor over the next `length` bytes (a vector's body), which this one then skips. */
  take(length: number): Cursor {
    if (this.pos + length > this.end) throw new Stop(UNREADABLE);
    const inner = new Cursor(this.bytes, this.pos, this.pos + length);
    this.pos += length;
    return inner;
  }

  /** The next `length` bytes, which must all have arrived. */
  slice(length: number): Buffer {
    this.need(length);
    this.pos += length;
    return this.bytes.subarray(this.pos - length, this.pos);
  }
}

/**
 * Scans the first bytes of a connection for a TLS ClientHello's server name. Decides as soon as
 * the name (or its absence) is known, without waiting for the rest of the record.
 */
export function scanClientHello(bytes: Buffer): ClientHelloScan {
  const records = handshakeBytes(bytes);
  if (records instanceof Stop) return records.scan;
  try {
    return readClientHello(records.handshake);
  } catch (error) {
    if (!(error instanceof Stop)) throw error;
    // Short of bytes that will never be read: past the bound, or behind a record of another type.
    return error.scan === INCOMPLETE && records.isLast ? UNREADABLE : error.scan;
  }
}

/**
 * The handshake bytes the records hold so far: the first record's body as it is, or several
 * records' bodies joined. Stops at the first record that has not fully arrived; `isLast` when no
 * later bytes can add to them.
 */
function handshakeBytes(bytes: Buffer): { handshake: Buffer; isLast: boolean } | Stop {
  const bodies: Buffer[] = [];
  let pos = 0;
  let total = 0;
  let isLast = false;
  while (pos < bytes.length) {
    if (bodies.length === MAX_RECORDS || total >= CLIENT_HELLO_MAX_BYTES) {
      isLast = true;
      break;
    }
    // Content type 22 (handshake), legacy version 3.0–3.4, a length the record layer allows.
    if (bytes[pos] !== 22) {
      if (bodies.length === 0) return new Stop(UNREADABLE);
      isLast = true;
      break;
    }
    if (pos + 1 < bytes.length && bytes[pos + 1] !== 3) return new Stop(UNREADABLE);
    if (pos + 2 < bytes.length && bytes[pos + 2]! > 4) return new Stop(UNREADABLE);
    if (pos + 5 > bytes.length) break;
    const length = bytes.readUInt16BE(pos + 3);
    if (length === 0 || length > MAX_RECORD_LENGTH) return new Stop(UNREADABLE);
    const body = bytes.subarray(pos + 5, pos + 5 + length);
    bodies.push(body);
    total += body.length;
    pos += 5 + length;
  }
  if (bodies.length === 0) return new Stop(INCOMPLETE);
  return { handshake: bodies.length === 1 ? bodies[0]! : Buffer.concat(bodies), isLast };
}

function readClientHello(handshake: Buffer): ClientHelloScan {
  const message = new Cursor(handshake, 0, Number.MAX_SAFE_INTEGER);
  if (message.u8() !== 1) return UNREADABLE; // HandshakeType client_hello
  const length = (message.u8() << 16) | message.u16();
  if (length > CLIENT_HELLO_MAX_BYTES) return UNREADABLE;
  const hello = message.take(length);
  if (hello.u8() !== 3) return UNREADABLE; // legacy_version 3.x
  hello.u8();
  hello.skip(32); // random
  const sessionIdLength = hello.u8();
  if (sessionIdLength > 32) return UNREADABLE;
  hello.skip(sessionIdLength);
  const cipherSuitesLength = hello.u16();
  if (cipherSuitesLength < 2 || cipherSuitesLength % 2 !== 0) return UNREADABLE;
  hello.skip(cipherSuitesLength);
  const compressionMethodsLength = hello.u8();
  if (compressionMethodsLength < 1) return UNREADABLE;
  hello.skip(compressionMethodsLength);
  // A ClientHello without extensions (TLS 1.2 and older may send one) names no server.
  if (hello.isAtEnd) return { kind: 'client-hello', serverName: undefined };
  const extensions = hello.take(hello.u16());
  while (!extensions.isAtEnd) {
    const type = extensions.u16();
    const body = extensions.take(extensions.u16());
    if (type === 0) return { kind: 'client-hello', serverName: hostNameOf(body) };
  }
  return { kind: 'client-hello', serverName: undefined };
}

/** The host_name of a server_name extension (RFC 6066 §3); one list of other name types names none. */
function hostNameOf(extension: Cursor): string | undefined {
  const list = extension.take(extension.u16());
  while (!list.isAtEnd) {
    const nameType = list.u8();
    const name = list.slice(list.u16());
    if (nameType !== 0) continue;
    const text = name.toString('latin1').toLowerCase();
    if (name.length === 0 || name.length > 255 || !HOST_NAME.test(text)) throw new Stop(UNREADABLE);
    return text;
  }
  return undefined;
}
