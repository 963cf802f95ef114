// TLS 1.3 KeyUpdate floods against the real `mutual inject serve`, sent by the system's OpenSSL
// (test/proxy/fixtures/tls_key_updates.py) by a client with no certificate: anyone who reaches
// the webhook's port completes a handshake, and one asking for new keys without end and never
// reading kept it at 100% CPU answering them (red-team helper: /live at 1.8 s). Past 32 it is
// closed, counted and logged; a client renewing its keys a few times is answered.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, metricValue } from '../../src/testing/mesh-pki.ts';
import { keyUpdateClientMissing, keyUpdatesThenRequest } from '../proxy/key-update-client.ts';
import { type InjectServeProcess, metrics, startInjectServe, writeWebhookFiles } from './webhook-harness.ts';

let dir: string;
let webhook: InjectServeProcess | undefined;

before(async () => {
  if (keyUpdateClientMissing) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-key-updates-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const files = {
    certFile: join(dir, 'tls', 'tls.crt'),
    keyFile: join(dir, 'tls', 'tls.key'),
    anchorsFile: join(dir, 'anchors.pem'),
  };
  await mkdir(join(dir, 'tls'));
  await writeWebhookFiles(pki, files);
  webhook = await startInjectServe(files);
});

after(async () => {
  (webhook?.child as ChildProcess | undefined)?.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** With no certificate: `count` KeyUpdates, then GET /inject. */
const keyUpdatesThenAsk = (count: number) =>
  keyUpdatesThenRequest({ port: webhook!.port, count, path: '/inject' });

test('a client renewing its keys 20 times is answered; one asking 20,000 times is closed, counted and logged', {
  skip: keyUpdateClientMissing,
}, async () => {
  const few = await keyUpdatesThenAsk(20);
  assert.equal(few.sent, 20);
  assert.match(String(few.answer), /^HTTP\/1\.[01] \d{3}/, JSON.stringify(few));
  const flood = await keyUpdatesThenAsk(20_000);
  assert.equal(flood.handshake, true);
  assert.equal(flood.answer, '', JSON.stringify(flood));
  const text = await metrics(webhook!.adminUrl);
  assert.equal(metricValue(text, 'mutual_injector_key_update_floods_total'), 1, text);
  assert.match(webhook!.stderr, /sent more than 32 TLS KeyUpdates on one connection/);
});
