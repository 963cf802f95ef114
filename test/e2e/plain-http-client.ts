// Test support: what a client that sends plain HTTP (or any bytes) to a daemon's HTTPS port sees.
// Raw TCP and TLS sockets written by hand, curl, and the checks of the plain-text 400 the identity
// service, the destination service and the injector webhook answer with (src/tls answerPlainHttp).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { promisify } from 'node:util';
import { hasCommand } from '../../src/testing/netns.ts';

const run = promisify(execFile);

/** The `skip` of a test that runs curl: why not, where curl is not installed. */
export const curlMissing = hasCommand('curl') ? undefined : 'curl is not installed';

/** Runs `curl -sS -m 5 ...args` (exit 0 on a 4xx without --fail); resolves with its stdout. */
export async function curl(args: readonly string[]): Promise<string> {
  return (await run('curl', ['-sS', '-m', '5', ...args])).stdout;
}

/** Resolves with all that `socket` receives, once it closes (for any reason). */
function receivedUntilClose(socket: Socket): Promise<string> {
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString();
  });
  socket.on('error', () => {});
  return new Promise((resolve) => socket.on('close', () => resolve(received)));
}

/** Writes `bytes` over plain TCP; resolves with all that came back once the server closed. */
export function rawTcp(port: number, host: string, bytes: string | Buffer): Promise<string> {
  const socket = connectTcp(port, host);
  socket.on('connect', () => socket.write(bytes));
  return receivedUntilClose(socket);
}

/** Writes one raw HTTP/1.1 request (ending `Connection: close`) in plain text; the answer's status, 0 if none. */
export async function rawHttp1Status(port: number, request: string): Promise<number> {
  return Number(
    /^HTTP\/1\.1 (\d{3})/.exec(await rawTcp(port, '127.0.0.1', Buffer.from(request, 'latin1')))?.[1] ?? 0,
  );
}

/**
 * Sends `bytes` over TLS, trusting `ca` and presenting `cert`/`key` if given; resolves with what
 * came back before the server closed ('' when the handshake was refused).
 */
export function rawTls(
  to: { host: string; port: number; ca: string; cert?: string; key?: string },
  bytes: string,
): Promise<string> {
  const socket = connectTls({
    host: to.host,
    port: to.port,
    ca: to.ca,
    ...(to.cert ? { cert: to.cert, key: to.key } : {}),
    // The services are named by their SPIFFE ID, not by a host name.
    checkServerIdentity: () => undefined,
  });
  socket.on('secureConnect', () => socket.end(bytes));
  return receivedUntilClose(socket);
}

/**
 * Checks a plain-text 400 as answerPlainHttp writes it: status line, content type, connection:
 * close, a content-length that is the body's, and a body matching `body` (the daemon's own code,
 * message and hint). `what` names the request in a failure.
 */
export function assertPlainHttpAnswer(answer: string, body: RegExp, what: string): void {
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, what);
  assert.match(answer, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/, what);
  assert.match(answer, /\r\nconnection: close\r\n/, what);
  const received = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  assert.equal(Number(/content-length: (\d+)/.exec(answer)?.[1]), Buffer.byteLength(received), what);
  assert.match(received, body, what);
}
