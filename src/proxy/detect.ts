import type { Duplex } from 'node:stream';

export type StreamProtocol = 'tls' | 'http1' | 'http2' | 'opaque';

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');
const HTTP1_REQUEST_LINE = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) /;

/**
 * Waits for the first bytes of a stream and puts them back, so whoever reads next sees the
 * whole stream. Resolves undefined when nothing arrives within `timeoutMs` (server-speaks-first
 * protocols, idle clients) or the peer goes away.
 */
export function peekFirstBytes(socket: Duplex, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const finish = (chunk: Buffer | undefined) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onGone);
      socket.off('close', onGone);
      socket.off('error', onGone);
      resolve(chunk);
    };
    const onReadable = () => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      socket.unshift(chunk);
      finish(chunk);
    };
    const onGone = () => finish(undefined);
    const timer = setTimeout(onGone, timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.once('error', onGone);
  });
}

/** Classifies a stream by its first bytes: TLS record, HTTP/2 preface, HTTP/1 request line, or opaque. */
export function classifyFirstBytes(chunk: Buffer | undefined): StreamProtocol {
  if (chunk === undefined || chunk.length === 0) return 'opaque';
  // A TLS handshake record: content type 22, legacy version 3.x.
  if (chunk[0] === 0x16 && (chunk.length < 2 || chunk[1] === 0x03)) return 'tls';
  const head = chunk.subarray(0, HTTP2_PREFACE.length);
  if (head.equals(HTTP2_PREFACE.subarray(0, head.length)) && head.length >= 3) return 'http2';
  if (HTTP1_REQUEST_LINE.test(chunk.subarray(0, 16).toString('latin1'))) return 'http1';
  return 'opaque';
}
