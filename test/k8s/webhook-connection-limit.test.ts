// The injector webhook against a client that opens connections and does not use them, or uses
// them a byte a second (slowloris): the real binary under a small file limit keeps answering real
// AdmissionReviews over TLS, holds at most --max-connections open, says so in its log and metrics,
// and closes the slow ones at --client-timeout (idle kept-alive ones at --idle-timeout). In-process
// webhooks show which connection goes at the cap: the API server's kept-alive one outlives a flood.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import type { InjectorWebhook } from '../../src/k8s/index.ts';
import { createTestPki, metricValue, type TestPki, waitUntil } from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';
import {
  admissionReview,
  metrics,
  pod,
  SERVICE_NAME,
  startInjectServe,
  startWebhook,
  type WebhookFiles,
  writeWebhookFiles,
} from './webhook-harness.ts';

let dir: string;
let pki: TestPki;
const files = (): WebhookFiles => ({
  certFile: join(dir, 'tls.crt'),
  keyFile: join(dir, 'tls.key'),
  anchorsFile: join(dir, 'anchors.pem'),
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-limit-'));
  pki = await createTestPki(join(dir, 'pki'));
  await writeWebhookFiles(pki, files());
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A client socket and when the server closed it (ms after `startedMs`), with every byte it got. */
interface Watched<T extends Socket> {
  readonly socket: T;
  readonly startedMs: number;
  received: string;
  closedAfterMs?: number;
  readonly closed: Promise<void>;
}

function watch<T extends Socket>(socket: T): Watched<T> {
  const watched: Watched<T> = {
    socket,
    startedMs: performance.now(),
    received: '',
    closed: once(socket, 'close').then(() => {
      watched.closedAfterMs = performance.now() - watched.startedMs;
    }),
  };
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    watched.received += chunk.toString('latin1');
  });
  return watched;
}

/** `count` TCP connections that never send a byte, all connected. */
async function flood(port: number, count: number): Promise<Watched<Socket>[]> {
  const sockets = Array.from({ length: count }, () => watch(connectTcp(port, '127.0.0.1')));
  await Promise.all(sockets.map(({ socket }) => once(socket, 'connect')));
  return sockets;
}

/** Writes `bytes` one a second from when `socket` is ready, until it closes. */
function trickle(socket: Socket, bytes: Buffer, readyEvent: 'connect' | 'secureConnect'): void {
  socket.once(readyEvent, () => {
    let sent = 0;
    const send = () => {
      if (sent < bytes.length && !socket.destroyed) socket.write(bytes.subarray(sent, ++sent));
    };
    send();
    const timer = setInterval(send, 1000);
    socket.once('close', () => clearInterval(timer));
  });
}

const secured = new WeakMap<TLSSocket, Promise<unknown>>();

/** A TLS connection verifying the webhook as the API server does. */
function tlsTo(port: number): TLSSocket {
  const socket = connect({
    host: '127.0.0.1',
    port,
    ca: pki.anchor.certificatePem,
    servername: SERVICE_NAME,
  });
  secured.set(socket, once(socket, 'secureConnect'));
  return socket;
}

/** The head of a kept-alive POST /inject, as the API server sends it. */
function postHead(length: number): string {
  return `POST /inject HTTP/1.1\r\nhost: ${SERVICE_NAME}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
}

/** Posts a review on a kept-alive TLS connection and returns the AdmissionReview answer. */
async function postReview(connection: Watched<TLSSocket>): Promise<{ uid: string; patchType?: string }> {
  await secured.get(connection.socket);
  const uid = crypto.randomUUID();
  const body = admissionReview(pod(), {}, uid);
  const start = connection.received.length;
  connection.socket.write(`${postHead(Buffer.byteLength(body))}${body}`);
  // The webhook answers chunked (headers first, then the review).
  await waitUntil(
    async () => connection.received.slice(start).endsWith('\r\n0\r\n\r\n'),
    'the AdmissionReview answer',
  );
  const answer = connection.received.slice(start);
  assert.match(answer, /^HTTP\/1\.1 200 [\s\S]*\r\ntransfer-encoding: chunked\r\n/i, answer.slice(0, 300));
  let answerBody = '';
  for (let rest = answer.slice(answer.indexOf('\r\n\r\n') + 4); ; ) {
    const size = Number.parseInt(rest, 16);
    if (size === 0) break;
    const dataStart = rest.indexOf('\r\n') + 2;
    answerBody += rest.slice(dataStart, dataStart + size);
    rest = rest.slice(dataStart + size + 2);
  }
  const response = JSON.parse(Buffer.from(answerBody, 'latin1').toString('utf8')).response;
  assert.equal(response.uid, uid);
  return response;
}

test('`mutual inject serve` under a 256-file limit: 600 unused connections and two slowloris (a byte a second) leave a real AdmissionReview answered; at most --max-connections stay open, log and metrics say so; the slow ones close at --client-timeout, an idle one at --idle-timeout', async () => {
  // ulimit -n as a Pod's container runtime or an operator could set it; 600 connections exceed it.
  const webhook = await startInjectServe(
    files(),
    ['--max-connections', '100', '--client-timeout', '2s', '--idle-timeout', '1s'],
    { openFiles: 256 },
  );
  const { port, adminUrl } = webhook;
  const watched: Watched<Socket>[] = [];
  try {
    const unused = await flood(port, 600);
    watched.push(...unused);
    await waitUntil(
      async () => metricValue(await metrics(adminUrl), 'mutual_injector_connections_shed_total') >= 500,
      'the webhook to close connections beyond the cap',
    );
    const afterFlood = await metrics(adminUrl);
    assert.ok(metricValue(afterFlood, 'mutual_injector_connections_open') <= 100, afterFlood);
    assert.ok(
      metricValue(afterFlood, 'mutual_injector_connections_shed_total', { state: 'handshake' }) >= 500,
      afterFlood,
    );

    // A ClientHello's first bytes, and a request head, each a byte a second.
    const slowHandshake = watch(connectTcp(port, '127.0.0.1'));
    trickle(
      slowHandshake.socket,
      Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
      'connect',
    );
    const slowHeaders = watch(tlsTo(port));
    trickle(slowHeaders.socket, Buffer.from(postHead(1000)), 'secureConnect');
    watched.push(slowHandshake, slowHeaders);

    // The API server's request: verified TLS, a real review, answered with the patch.
    const apiServer = watch(tlsTo(port));
    watched.push(apiServer);
    const answer = await postReview(apiServer);
    assert.equal(answer.patchType, 'JSONPatch');
    assert.match(webhook.stderr, /inject: pod demo\/web injected/);
    assert.match(
      webhook.stderr,
      /inject: at the limit of 100 open connections \(--max-connections\): closed the oldest connection in its TLS handshake, from 127\.0\.0\.1:\d+, to accept a new one\./,
    );
    const answeredMs = performance.now() - apiServer.startedMs;

    await Promise.all([slowHandshake.closed, slowHeaders.closed, apiServer.closed]);
    // At the 2 s deadline (checked every 0.5 s), not cut off by the cap: the header slowloris gets its 408.
    for (const slow of [slowHandshake, slowHeaders]) {
      assert.ok((slow.closedAfterMs ?? 0) >= 1900, `closed at ${slow.closedAfterMs} ms`);
      assert.ok((slow.closedAfterMs ?? 0) <= 4500, `closed at ${slow.closedAfterMs} ms`);
    }
    assert.match(slowHeaders.received, /^HTTP\/1\.1 408 /);
    assert.equal(slowHandshake.received, '');
    // Idle after its answer: closed after --idle-timeout (1 s, plus Node's 1 s grace).
    const idleMs = (apiServer.closedAfterMs ?? 0) - answeredMs;
    assert.ok(idleMs >= 900 && idleMs <= 4000, `idle connection closed after ${idleMs} ms`);
    // The unused ones: beyond the cap at once, the rest at the handshake deadline.
    await Promise.all(unused.map((connection) => connection.closed));
    assert.ok(unused.every((connection) => (connection.closedAfterMs ?? 0) <= 6000));
    assert.equal(metricValue(await metrics(adminUrl), 'mutual_injector_connections_open'), 0);
  } finally {
    for (const connection of watched) connection.socket.destroy();
    webhook.child.kill('SIGKILL');
  }
});

/** An in-process webhook capped at `maxConnections`, with deadlines the tests never reach. */
function startCappedWebhook(maxConnections: number): Promise<InjectorWebhook> {
  return startWebhook(files(), { clientTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxConnections });
}

test("at the cap a flood closes its own connections, never the API server's kept-alive one: a second review is answered on it", async () => {
  const webhook = await startCappedWebhook(20);
  const port = Number(new URL(webhook.url).port);
  const adminUrl = webhook.adminUrl ?? '';
  const sockets: Socket[] = [];
  try {
    const apiServer = watch(tlsTo(port));
    sockets.push(apiServer.socket);
    await postReview(apiServer);
    sockets.push(...(await flood(port, 200)).map(({ socket }) => socket));
    await waitUntil(
      async () => metricValue(await metrics(adminUrl), 'mutual_injector_connections_shed_total') >= 181,
      'the flood to reach the cap',
    );
    assert.equal(metricValue(await metrics(adminUrl), 'mutual_injector_connections_open'), 20);
    await postReview(apiServer);
    assert.equal(apiServer.closedAfterMs, undefined, 'the same connection');
    const text = await metrics(adminUrl);
    assert.equal(metricValue(text, 'mutual_injector_connections_shed_total', { state: 'idle' }), 0, text);
  } finally {
    for (const socket of sockets) socket.destroy();
    webhook.destroy();
  }
});

test('which connection goes at the cap: an idle one before a request whose body is on its way, even an older one; then the oldest body', async () => {
  const webhook = await startCappedWebhook(3);
  const port = Number(new URL(webhook.url).port);
  const adminUrl = webhook.adminUrl ?? '';
  const sockets: Socket[] = [];
  const shed = async (state: string) =>
    metricValue(await metrics(adminUrl), 'mutual_injector_connections_shed_total', { state });
  const open = async () => metricValue(await metrics(adminUrl), 'mutual_injector_connections_open');
  /** Headers and 10 of 1000 body bytes. */
  const slowBody = async () => {
    const connection = watch(tlsTo(port));
    sockets.push(connection.socket);
    await secured.get(connection.socket);
    connection.socket.write(`${postHead(1000)}{"apiVersion"`);
    return connection;
  };
  try {
    const oldestBody = await slowBody();
    const idle = watch(tlsTo(port));
    sockets.push(idle.socket);
    await postReview(idle);
    const body = await slowBody();
    await waitUntil(async () => (await open()) === 3, 'three connections open');

    const first = watch(connectTcp(port, '127.0.0.1'));
    sockets.push(first.socket);
    await idle.closed;
    assert.equal(await shed('idle'), 1);
    first.socket.destroy();
    await waitUntil(async () => (await open()) === 2, 'the newcomer gone');

    const third = await slowBody();
    await waitUntil(async () => (await open()) === 3, 'three bodies on their way');
    const last = watch(connectTcp(port, '127.0.0.1'));
    sockets.push(last.socket);
    await oldestBody.closed;
    assert.equal(await shed('body'), 1);
    assert.equal(body.closedAfterMs, undefined);
    assert.equal(third.closedAfterMs, undefined);
    assert.equal(await shed('handshake'), 0);
  } finally {
    for (const socket of sockets) socket.destroy();
    webhook.destroy();
  }
});

test('--max-connections and --idle-timeout refuse what would leave connections unbounded', async () => {
  const { certFile, keyFile, anchorsFile } = files();
  for (const [flag, value, message] of [
    ['--max-connections', '0', /--max-connections "0" must be a whole number from 1 to 1048576/],
    ['--max-connections', 'many', /--max-connections "many" must be a whole number/],
    ['--idle-timeout', '0s', /--idle-timeout "0s" is too short: give 1s to 10m/],
  ] as const) {
    const child = spawn(
      process.execPath,
      [
        join(repoRoot(), 'bin', 'mutual.js'),
        'inject',
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--admin-listen',
        'off',
        '--cert',
        certFile,
        '--key',
        keyFile,
        '--trust-anchors-file',
        anchorsFile,
        flag,
        value,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2, stderr);
    assert.match(stderr, /error\[MUTUAL_CLI_USAGE\]/);
    assert.match(stderr, message);
  }
});
