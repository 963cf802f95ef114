// An app behind the inbound that answers with bytes that are not valid HTTP/1.1, or answers
// oddly, or not at all. The client must get a clear answer (a 502 that names the fault, not "the
// app did not answer" for an app that did), the pooled connections must not carry the bad bytes
// into the next answer, and both sidecars must stay up. Before, every invalid answer was
// `502 app_unavailable`, "the app on port N did not answer: Response does not match …". Real
// pair; the app is a raw net.Server that answers by the request's path.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type Http1Pair, startHttp1Pair } from './http1-pair.ts';

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

/** What the app writes for each path. */
const ANSWERS: Record<string, (socket: Socket) => void> = {
  garbage: (socket) => socket.write('FOO BAR BAZ\r\n\r\n'),
  'two-content-lengths': (socket) =>
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nokk'),
  'content-length-and-chunked': (socket) =>
    socket.write(
      'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    ),
  'negative-content-length': (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok'),
  'huge-content-length': (socket) =>
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\nok'),
  'nul-in-header': (socket) => socket.write('HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok'),
  'cr-in-header': (socket) => socket.write('HTTP/1.1 200 OK\r\nx-a: a\rb\r\ncontent-length: 2\r\n\r\nok'),
  'one-100': (socket) => socket.write(`HTTP/1.1 100 Continue\r\n\r\n${OK}`),
  'a-thousand-100': (socket) => socket.write(`${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(1000)}${OK}`),
  'unasked-101': (socket) =>
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nraw'),
  'big-head': (socket) =>
    socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70 * 1024)}\r\ncontent-length: 2\r\n\r\nok`),
  'head-with-body': (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello'),
  '204-with-body': (socket) => socket.write('HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nhello'),
  '304-with-body': (socket) => socket.write('HTTP/1.1 304 Not Modified\r\n\r\nhello'),
  'answer-then-close': (socket) => socket.end(OK),
  'reset-mid-answer': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial');
    setTimeout(() => socket.resetAndDestroy(), 50);
  },
  ok: (socket) => socket.write(OK),
};

function createRawApp(): Server {
  const app = createServer((socket) => {
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      for (let end = head.indexOf('\r\n\r\n'); end >= 0; end = head.indexOf('\r\n\r\n')) {
        const path = head.slice(0, end).split(' ')[1]!.slice(1);
        // The upload that follows is never read: the app answers before it.
        head = path === 'answer-then-close' ? '' : head.slice(end + 4);
        (ANSWERS[path] ?? ANSWERS.ok!)(socket);
      }
    });
  });
  return Object.assign(app, { closeAllConnections() {} }) as unknown as Server;
}

let pair: Http1Pair;
before(async () => {
  pair = await startHttp1Pair({ name: 'app-misbehave-answers-', createApp: createRawApp });
});
after(() => pair.stop());

/** One request through web's outbound with `connection: close`; what came back. */
const call = (path: string, method = 'GET', rest = '\r\n') =>
  pair.exchange('outbound', [`${method} /${path} HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n${rest}`]);

const INVALID: [path: string, problem: RegExp][] = [
  ['garbage', /Expected HTTP\//],
  ['two-content-lengths', /content-length/i],
  ['content-length-and-chunked', /content-length/i],
  ['negative-content-length', /Content-Length/],
  ['huge-content-length', /content-length/i],
  ['nul-in-header', /header value/],
  ['cr-in-header', /LF after header value/],
  ['one-100', /bad response/],
  ['a-thousand-100', /bad response/],
  ['unasked-101', /bad upgrade/],
];

for (const [path, problem] of INVALID) {
  test(`an answer that is not valid HTTP/1.1 (${path}) is 502 app_answer_invalid, and the next call works`, async () => {
    const text = await call(path);
    assert.match(text, /^HTTP\/1\.1 502 /);
    assert.match(text, /x-mutual-proxy-error: app_answer_invalid\r\n/);
    assert.match(text, /answered with bytes that are not a valid HTTP\/1\.1 answer/);
    assert.match(text, problem);
    assert.match(await call('ok'), /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n(2\r\n)?ok/);
  });
}

test('a head over 64 KiB is 502 app_answer_too_large', async () => {
  assert.match(
    await call('big-head'),
    /^HTTP\/1\.1 502 [\s\S]*x-mutual-proxy-error: app_answer_too_large\r\n/,
  );
});

test('a body where none may be (HEAD, 204, 304) is dropped and never reaches the next answer', async () => {
  assert.match(await call('head-with-body', 'HEAD'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n$/);
  assert.match(await call('204-with-body'), /^HTTP\/1\.1 204 No Content\r\n[\s\S]*\r\n\r\n$/);
  assert.match(await call('304-with-body'), /^HTTP\/1\.1 304 Not Modified\r\n[\s\S]*\r\n\r\n$/);
  assert.match(await call('ok'), /^HTTP\/1\.1 200 OK[\s\S]*ok/);
});

test('an answer before the upload was read, then a close, reaches the client', async () => {
  const text = await call('answer-then-close', 'POST', `content-length: 2000000\r\n\r\n${'x'.repeat(65536)}`);
  assert.match(text, /^HTTP\/1\.1 200 OK[\s\S]*ok/);
});

test('a reset mid-answer is a cut answer, never a complete one', async () => {
  const text = await call('reset-mid-answer');
  assert.match(text, /^HTTP\/1\.1 200 OK[\s\S]*partial$/);
  assert.doesNotMatch(text, /\r\n0\r\n\r\n$/);
});

test('both sidecars are still up', () => {
  assert.equal(pair.server.child.exitCode, null);
  assert.equal(pair.client.child.exitCode, null);
});
