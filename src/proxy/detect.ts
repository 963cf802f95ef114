import type { Duplex } from 'node:stream';
import { CLIENT_HELLO_MAX_BYTES, type ClientHelloScan, scanClientHello } from '../tls/index.ts';

export type StreamProtocol = 'tls' | 'http1' | 'http2' | 'opaque';

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');
const HTTP1_REQUEST_LINE = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) /;
/** ` HTTP/1.1` (any case, any blank before it): a request line whatever its method or spacing. */
const HTTP_VERSION = /\sHTTP\/\d/i;
/** An HTTP method is a token (RFC 9110 §5.6.2). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Bytes a detection may wait for: an HTTP/1 request line longer than this is classified as HTTP. */
const MAX_DETECT_BYTES = 16 * 1024;

/**
 * Waits for the first bytes of a stream, and for more while they could still begin an HTTP
 * request (a client may send `G`, then `ET /admin HTTP/1.1`), and puts them back, so whoever
 * reads next sees the whole stream. Resolves undefined when nothing arrives within `timeoutMs`
 * (server-speaks-first protocols, idle clients) or the peer goes away before any byte; `signal`
 * ends the wait early, with what has arrived so far.
 */
export function peekFirstBytes(
  socket: Duplex,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  return peekWhile(
    socket,
    timeoutMs,
    (bytes) => isUnfinishedRequestLine(bytes) && bytes.length < MAX_DETECT_BYTES,
    signal,
  );
}

/**
 * For a stream whose first bytes were a TLS record too short to name its server (`scanClientHello`
 * said incomplete): waits for more, up to `timeoutMs` and CLIENT_HELLO_MAX_BYTES, and puts them
 * all back. A ClientHello still incomplete then (a stalled or hostile client) is `unreadable`.
 */
export async function peekClientHello(socket: Duplex, timeoutMs: number): Promise<ClientHelloScan> {
  let scan: ClientHelloScan = { kind: 'incomplete' };
  await peekWhile(socket, timeoutMs, (bytes) => {
    scan = scanClientHello(bytes);
    return scan.kind === 'incomplete' && bytes.length < 2 * CLIENT_HELLO_MAX_BYTES;
  });
  return scan.kind === 'incomplete' ? { kind: 'unreadable' } : scan;
}

/**
 * Reads what arrives, and what was put back before, while `needsMore` says so, then puts it all
 * back. Resolves undefined when nothing arrived.
 */
function peekWhile(
  socket: Duplex,
  timeoutMs: number,
  needsMore: (bytes: Buffer) => boolean,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let bytes: Buffer | undefined;
    const finish = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      socket.off('readable', onReadable);
      socket.off('end', finish);
      socket.off('close', finish);
      socket.off('error', finish);
      if (bytes !== undefined) socket.unshift(bytes);
      resolve(bytes);
    };
    const onReadable = () => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      bytes = bytes === undefined ? chunk : Buffer.concat([bytes, chunk]);
      if (!needsMore(bytes)) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    signal?.addEventListener('abort', finish, { once: true });
    socket.on('readable', onReadable);
    socket.once('end', finish);
    socket.once('close', finish);
    socket.once('error', finish);
  });
}

/**
 * True while the bytes could still be the start of an HTTP/1 request line (`G`, `GET /adm`,
 * `PROPFIND /x HT`): printable, no line end yet, shaped as method, target, version. Deciding
 * "opaque" there would splice the rest to the app unparsed, past per-request policy and with
 * whatever `x-mutual-client-id` the client wrote.
 */
function isUnfinishedRequestLine(bytes: Buffer): boolean {
  let start = 0;
  // HTTP/1 parsers skip empty lines before a request (RFC 9112 §2.2); lenient ones skip blanks.
  while (
    start < bytes.length &&
    (bytes[start] === 0x0d || bytes[start] === 0x0a || bytes[start] === 0x20 || bytes[start] === 0x09)
  )
    start++;
  for (let i = start; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === 0x0a || (byte < 0x20 && byte !== 0x09 && byte !== 0x0d) || byte > 0x7e) return false;
  }
  const [method, target, version, ...rest] = bytes
    .subarray(start)
    .toString('latin1')
    .split(/[ \t]+/);
  if (method === '') return true;
  // A first word that cannot be a method settles it now: a text protocol's first message
  // (`tick0;`) must not wait out the detection timeout and then be parsed as HTTP.
  if (!TOKEN.test(method!)) return false;
  if (target === undefined) return true;
  // A target is "/…", "*", or "scheme:…"/"host:port"; a last word of letters may still become one.
  const isTarget =
    target === '' ||
    /^[/*]/.test(target) ||
    (/^[A-Za-z][A-Za-z0-9+.-]*(:|$)/.test(target) && (version === undefined || target.includes(':')));
  if (!isTarget) return false;
  if (version === undefined || version === '') return rest.every((word) => word === '');
  const upper = version.toUpperCase();
  const isVersion = upper.length <= 5 ? 'HTTP/'.startsWith(upper) : upper.startsWith('HTTP/');
  return isVersion && rest.every((word) => word === '');
}

/**
 * Classifies a stream by its first bytes: TLS record, HTTP/2 preface, HTTP/1 request, or opaque.
 * HTTP/1 is any first line that names an HTTP version or starts with a standard method, and a
 * first line that stalls while it still could become one (parsed, and refused, as HTTP).
 */
export function classifyFirstBytes(chunk: Buffer | undefined): StreamProtocol {
  if (chunk === undefined || chunk.length === 0) return 'opaque';
  // A TLS handshake record: content type 22, legacy version 3.x.
  if (chunk[0] === 0x16 && (chunk.length < 2 || chunk[1] === 0x03)) return 'tls';
  const head = chunk.subarray(0, HTTP2_PREFACE.length);
  if (head.equals(HTTP2_PREFACE.subarray(0, head.length)) && head.length >= 3) return 'http2';
  if (isUnfinishedRequestLine(chunk)) return 'http1';
  let start = 0;
  while (chunk[start] === 0x0d || chunk[start] === 0x0a) start++;
  const lineEnd = chunk.indexOf(0x0a, start);
  const line = chunk.subarray(start, lineEnd < 0 ? chunk.length : lineEnd).toString('latin1');
  return HTTP1_REQUEST_LINE.test(line) || HTTP_VERSION.test(line) ? 'http1' : 'opaque';
}
