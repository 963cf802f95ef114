import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemClock } from '../clock.ts';
import {
  bundleToPem,
  createIssuer,
  createTrustAnchor,
  createTrustBundle,
  privateKeyToPem,
} from '../pki/index.ts';
import { caFilePaths, writeCaDirectory } from '../store/index.ts';
import { type CaReloadEvent, createCaWatcher } from './ca-watcher.ts';

const options = { trustDomain: 'cluster.local', clock: systemClock };

test('an issuer refused for a root the anchors lack is taken once that root is added, without copying it again', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-ca-watcher-'));
  try {
    const anchorA = await createTrustAnchor(options);
    await writeCaDirectory(dir, anchorA, await createIssuer(anchorA, options));
    const anchorB = await createTrustAnchor(options);
    const issuerB = await createIssuer(anchorB, options);
    const files = caFilePaths(dir);
    const events: CaReloadEvent[] = [];
    const watcher = await createCaWatcher({
      files,
      clock: systemClock,
      pollIntervalMs: 0,
      onChange: () => {},
      onEvent: (event) => events.push(event),
    });
    try {
      // The next issuer copied in before its root: refused, the first one keeps signing.
      await writeFile(files.issuerKey, privateKeyToPem(issuerB.keys.privateKey));
      await writeFile(files.issuerCertificate, issuerB.certificatePem);
      await watcher.reload();
      assert.deepEqual(
        events.map((event) => [event.what, event.result]),
        [['issuer', 'refused']],
      );
      // Then the root: the issuer file, unchanged, is now usable and taken.
      const both = createTrustBundle(
        'cluster.local',
        [anchorA, anchorB].map((a) => Buffer.from(a.certificate.rawData)),
      );
      await writeFile(files.trustAnchors, bundleToPem(both));
      await watcher.reload();
      assert.equal(watcher.current().issuer.certificatePem, issuerB.certificatePem, JSON.stringify(events));
      assert.deepEqual(
        events
          .slice(1)
          .map((event) => [event.what, event.result])
          .sort(),
        [
          ['issuer', 'accepted'],
          ['trust-anchors', 'accepted'],
        ],
      );
      // A later poll with nothing changed decides nothing again.
      await watcher.reload();
      assert.equal(events.length, 3);
    } finally {
      watcher.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
