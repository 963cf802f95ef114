import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { test } from 'node:test';
import { probeHttp, probeTcp, watchLiveness } from './liveness.ts';

const FAST = { periodSeconds: 1, failureThreshold: 2, timeoutSeconds: 1 };

/** A /live that answers as `answer` says, for as long as the test lets it (real socket, port 0). */
async function liveServer(
  answer: (response: ServerResponse) => void,
): Promise<{ url: string; server: Server }> {
  const server = createServer((_request, response) => answer(response));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/live`, server };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

test('probeHttp: 200-399 is alive; an error status, a refusal or silence says what it was', async () => {
  const ok = await liveServer((response) => response.end('live\n'));
  const moved = await liveServer((response) => response.writeHead(302, { location: '/' }).end());
  const broken = await liveServer((response) => response.writeHead(500).end());
  const silent = await liveServer(() => {});
  try {
    assert.equal(await probeHttp(ok.url, 1000), undefined);
    assert.equal(await probeHttp(moved.url, 1000), undefined);
    assert.equal(await probeHttp(broken.url, 1000), 'answered 500');
    assert.equal(await probeHttp(silent.url, 300), 'no answer within 0.3 s');
  } finally {
    await Promise.all([ok, moved, broken, silent].map(({ server }) => close(server)));
  }
  assert.equal(await probeHttp(ok.url, 1000), 'ECONNREFUSED');
});

test('watchLiveness: a process that answered and then stops answering fails after failureThreshold probes', async () => {
  let isAnswering = true;
  const live = await liveServer((response) => {
    if (isAnswering) response.end('live\n');
  });
  try {
    let answered = 0;
    const failed = await new Promise<string>((resolve) => {
      watchLiveness(live.url, FAST, { isWatching: () => true, onFailed: resolve });
      // Silent from the second probe on (the first answers, so no startup window applies).
      live.server.on('request', () => {
        answered += 1;
        isAnswering = false;
      });
    });
    assert.equal(answered, 3);
    assert.equal(failed, 'did not answer /live 2 times in 2 s (no answer within 1 s)');
  } finally {
    await close(live.server);
  }
});

test('watchLiveness: a process just started has the whole window to answer a first time', async () => {
  const live = await liveServer((response) => response.writeHead(503).end());
  try {
    const failed = await new Promise<string>((resolve) => {
      watchLiveness(live.url, FAST, { isWatching: () => true, onFailed: resolve });
    });
    assert.equal(failed, 'did not answer /live in the 2 s after it started (answered 503)');
  } finally {
    await close(live.server);
  }
});

test('watchLiveness: nothing is probed once isWatching turns false (the process exited, the mesh stops)', async () => {
  let probes = 0;
  const live = await liveServer((response) => {
    probes += 1;
    response.writeHead(500).end();
  });
  try {
    let isWatching = true;
    let failures = 0;
    watchLiveness(live.url, FAST, {
      isWatching: () => isWatching,
      onFailed: () => {
        failures += 1;
      },
      hasAnswered: true,
    });
    // Wait for the first probe, then stop watching: no second probe, no failure reported.
    while (probes === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    isWatching = false;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(probes, 1);
    assert.equal(failures, 0);
  } finally {
    await close(live.server);
  }
});

test("probeHttp sends a probe's httpHeaders; probeTcp is a connect, refused once nothing listens", async () => {
  let seen: string | undefined;
  const live = await liveServer((response) => response.end('ok\n'));
  live.server.on('request', (incoming) => {
    seen = String(incoming.headers['x-probe']);
  });
  const port = Number(new URL(live.url).port);
  try {
    assert.equal(await probeHttp(live.url, 1000, [{ name: 'X-Probe', value: '1' }]), undefined);
    assert.equal(seen, '1');
  } finally {
    await close(live.server);
  }
  const listener = createTcpServer((socket) => socket.end());
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const tcpPort = (listener.address() as AddressInfo).port;
  assert.equal(await probeTcp(tcpPort, 1000), undefined);
  await new Promise((resolve) => listener.close(resolve));
  assert.equal(await probeTcp(tcpPort, 1000), 'ECONNREFUSED');
  assert.equal(await probeTcp(port, 1000), 'ECONNREFUSED');
});

test('watchLiveness: an inconclusive probe (the sidecar asked about its app did not answer) counts as no failure', async () => {
  const outcomes: Array<string | undefined | { inconclusive: string }> = [
    'answered 500',
    { inconclusive: 'sidecar down' },
    { inconclusive: 'sidecar down' },
    undefined,
    'answered 500',
    'answered 503',
  ];
  let probes = 0;
  const failed = await new Promise<string>((resolve) => {
    watchLiveness(
      { failed: 'failed its livenessProbe (GET x)', probe: async () => outcomes[probes++] },
      FAST,
      { isWatching: () => true, onFailed: resolve, hasAnswered: true, initialDelaySeconds: 1 },
    );
  });
  assert.equal(probes, 6);
  assert.equal(failed, 'failed its livenessProbe (GET x) 2 times in 2 s (answered 503)');
});
