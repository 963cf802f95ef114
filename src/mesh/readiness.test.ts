// The mesh's TCP readiness probe of an app: a server-speaks-first app (it writes a greeting as a
// connection opens, as MySQL or SMTP do) must see the probe leave cleanly, never a reset. A reset
// made such an app (one without a socket 'error' handler) crash right after `mutual up` said ready.
import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { test } from 'node:test';
import { waitForTcp } from './readiness.ts';

test('probing a greeting server 100 times: every probe ends its connection cleanly, none resets it', async () => {
  const errors: string[] = [];
  let closedCleanly = 0;
  const greeter = createServer((socket) => {
    socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    socket.on('close', (hadError) => {
      if (!hadError) closedCleanly++;
    });
    socket.end('HELLO\n');
  });
  await new Promise<void>((resolve) => greeter.listen(0, '127.0.0.1', resolve));
  const { port } = greeter.address() as AddressInfo;
  try {
    for (let i = 0; i < 100; i++) {
      const outcome = await waitForTcp(port, { deadlineMs: Date.now() + 5_000, isAlive: () => true });
      assert.deepEqual(outcome, { ok: true });
    }
    // The last probes' connections may still be closing.
    for (let i = 0; i < 100 && closedCleanly + errors.length < 100; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(errors, []);
    assert.equal(closedCleanly, 100);
  } finally {
    greeter.close();
  }
});
