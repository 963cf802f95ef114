// Where an HTTP/1 message ends, as the client, the sidecar and the app each see it. Raw bytes
// (pipelined requests, bytes after `Connection: close`, garbage while an answer streams, oversized
// heads) go to a real sidecar pair over mTLS and to a PERMISSIVE port in plaintext; the app records
// every request it gets, so a request the client was never answered for shows up there.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type ExchangePart, type Http1Pair, startHttp1Pair, statuses, VIAS, type Via } from './http1-pair.ts';

let pair: Http1Pair;
/** `METHOD target` of every request an app received. */
const seen: string[] = [];

function app(request: IncomingMessage, response: ServerResponse) {
  seen.push(`${request.method} ${request.url}`);
  request.resume();
  if (request.url === '/slow') return void setTimeout(() => response.end('slow answer'), 300);
  if (request.url?.startsWith('/late/'))
    return void setTimeout(() => response.end(`late ${request.url}`), 300);
  if (request.url === '/stream') {
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.write('first part;');
    return void setTimeout(() => response.end('second part'), 800);
  }
  response.end(`answer ${request.url}`);
}

before(async () => {
  pair = await startHttp1Pair({
    name: 'mutual-http1-framing-',
    createApp: () => {
      const server = createServer(app);
      // Upgrades are recorded with the Connection header and identity the app got, then refused.
      server.on('upgrade', (request: IncomingMessage, socket: Socket) => {
        const id = request.headers['x-mutual-client-id'] ?? 'none';
        seen.push(`UPGRADE ${request.url} connection=${request.headers.connection} id=${id}`);
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      });
      return server;
    },
  });
});

after(async () => {
  await pair?.stop();
});

const exchange = (via: Via, parts: ExchangePart[]) => pair.exchange(via, parts);

/** The requests the apps got for `marker`'s case: a request for `marker` comes last, once all else is in. */
async function seenUntil(via: Via, marker: string): Promise<string[]> {
  const answer = await exchange(via, [`GET ${marker} HTTP/1.1\r\nHost: emoji\r\nConnection: close\r\n\r\n`]);
  assert.deepEqual(statuses(answer), ['200']);
  const found = seen.splice(0);
  assert.equal(found.at(-1), `GET ${marker}`);
  return found.slice(0, -1);
}

for (const via of ['mtls', 'plaintext'] as const) {
  test(`${via}: nothing pipelined behind a 400 that closes the connection reaches the app`, async () => {
    seen.length = 0;
    // One write, so the sidecar reads all three requests at once, as a client pipelining does.
    const answer = await exchange(via, [
      [
        'GET /refused HTTP/1.1\r\nHost: a,b\r\n\r\n',
        'POST /pipelined HTTP/1.1\r\nHost: emoji\r\nContent-Length: 4\r\n\r\nBODY',
        'GET /upgraded HTTP/1.1\r\nHost: emoji\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      ].join(''),
    ]);
    assert.deepEqual(statuses(answer), ['400'], answer);
    assert.match(answer, /connection: close/i);
    assert.deepEqual(await seenUntil(via, `/after-refused-${via}`), []);
  });
}

for (const via of VIAS) {
  test(`${via}: bytes after a request with Connection: close are ignored and the request gets its answer`, async () => {
    seen.length = 0;
    const answer = await exchange(via, [
      'GET /slow HTTP/1.1\r\nHost: emoji\r\nConnection: close\r\n\r\nGET /pipelined HTTP/1.1\r\nHost: emoji\r\n\r\n',
    ]);
    assert.deepEqual(statuses(answer), ['200'], answer);
    assert.match(answer, /slow answer$/);
    assert.deepEqual(await seenUntil(via, `/after-close-${via}`), ['GET /slow']);
  });

  test(`${via}: a parse error while an answer streams does not write into it`, async () => {
    const answer = await exchange(via, [
      'GET /stream HTTP/1.1\r\nHost: emoji\r\n\r\n',
      (text) => text.includes('first part;'),
      'NOT HTTP AT ALL\r\n\r\n',
    ]);
    // The answer under way is finished (it was cut off after its first part), then refused.
    assert.deepEqual(statuses(answer), ['200', '400'], answer);
    assert.match(
      answer,
      /first part;\r\n[\s\S]*second part\r\n0\r\n\r\nHTTP\/1\.1 400 Bad Request\r\n/,
      answer,
    );
    seen.length = 0;
  });

  test(`${via}: a request head over the size limit is answered 431`, async () => {
    for (const head of [
      `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: emoji\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: emoji\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: emoji\r\n${'X-Many: 1\r\n'.repeat(3000)}\r\n`,
    ]) {
      const answer = await exchange(via, [head]);
      assert.deepEqual(statuses(answer), ['431'], `${head.slice(0, 40)}: ${answer}`);
    }
  });
}

for (const via of VIAS) {
  test(`${via}: a malformed request pipelined behind slow ones is answered only after them, in order`, async () => {
    seen.length = 0;
    // One write: the sidecar parses both requests and fails on the third before the app answers.
    const answer = await exchange(via, [
      [
        'GET /late/a HTTP/1.1\r\nHost: emoji\r\n\r\n',
        'GET /late/b HTTP/1.1\r\nHost: emoji\r\n\r\n',
        'POST /malformed HTTP/1.1\r\nHost: emoji\r\nContent-Length: 1x\r\n\r\nx',
      ].join(''),
    ]);
    // A 400 first would be read as the answer to /late/a.
    assert.deepEqual(statuses(answer), ['200', '200', '400'], answer);
    assert.match(
      answer,
      /\r\n\r\nlate \/late\/a[\s\S]*\r\n\r\nlate \/late\/b(HTTP\/1\.1 400 Bad Request\r\n[\s\S]*)$/,
      answer,
    );
    assert.match(answer, /HTTP\/1\.1 400 Bad Request\r\n[\s\S]*connection: close/i);
    assert.deepEqual(await seenUntil(via, `/after-malformed-${via}`), ['GET /late/a', 'GET /late/b']);
  });
}

for (const via of ['mtls', 'outbound'] as const) {
  test(`${via}: an upgrade's Connection header cannot name the verified identity as hop-by-hop`, async () => {
    seen.length = 0;
    const answer = await exchange(via, [
      'GET /ws HTTP/1.1\r\nHost: emoji\r\nConnection: Upgrade, x-mutual-client-id\r\nUpgrade: websocket\r\n\r\n',
    ]);
    assert.deepEqual(statuses(answer), ['404'], answer);
    assert.deepEqual(await seenUntil(via, `/after-upgrade-${via}`), [
      `UPGRADE /ws connection=upgrade id=${pair.web.spiffeId}`,
    ]);
  });
}
