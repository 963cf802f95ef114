// The injector webhook on 0.0.0.0 (as `mutual install` runs it) answers over IPv6 too: in an
// IPv6-only cluster the API server calls it, and the kubelet probes it, at the pod's IPv6 address
// ([::1] stands for it here). curl checks the webhook's certificate as the API server does (the
// caBundle and the Service's name) and gets the injection back. A port already taken is
// MUTUAL_K8S_WEBHOOK_LISTEN_FAILED naming it. Skipped on a host without IPv6.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ipv6CurlSkipReason } from '../../src/testing/ipv6.ts';
import { createTestPki } from '../../src/testing/mesh-pki.ts';
import {
  admissionReview,
  pod,
  SERVICE_NAME,
  startWebhook,
  type WebhookFiles,
  writeWebhookFiles,
} from '../k8s/webhook-harness.ts';

const run = promisify(execFile);

const skip = await ipv6CurlSkipReason();

test('on 0.0.0.0 the webhook and its admin port answer over IPv6; a taken port is a typed error', {
  skip,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'left-ipv6-webhook-'));
  try {
    const pki = await createTestPki(join(dir, 'pki'));
    const files: WebhookFiles = {
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      anchorsFile: join(dir, 'anchors.pem'),
    };
    await writeWebhookFiles(pki, files);
    const webhook = await startWebhook(files, {
      listen: { host: '0.0.0.0', port: 0 },
      adminListen: { host: '0.0.0.0', port: 0 },
    });
    const port = new URL(webhook.url).port;
    const adminPort = new URL(webhook.adminUrl!).port;
    try {
      const review = await run('curl', [
        ...['-sS', '-g', '-m', '5', '--cacert', files.anchorsFile],
        ...['--connect-to', `${SERVICE_NAME}:${port}:[::1]:${port}`],
        ...['-H', 'content-type: application/json', '--data-binary', admissionReview(pod())],
        `https://${SERVICE_NAME}:${port}/inject`,
      ]);
      const answer = JSON.parse(review.stdout).response;
      assert.equal(answer.allowed, true);
      assert.equal(answer.patchType, 'JSONPatch');
      const ready = await run('curl', ['-sS', '-g', '-m', '5', `http://[::1]:${adminPort}/ready`]);
      assert.equal(ready.stdout, 'ready\n');

      await assert.rejects(
        startWebhook(files, { listen: { host: '0.0.0.0', port: Number(port) } }),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'MUTUAL_K8S_WEBHOOK_LISTEN_FAILED');
          assert.match(
            error.message,
            new RegExp(`cannot listen on 0\\.0\\.0\\.0:${port} \\(webhook, --listen\\): EADDRINUSE`),
          );
          return true;
        },
      );
    } finally {
      webhook.destroy();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
