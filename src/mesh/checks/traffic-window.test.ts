import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ProxySamples } from '../edges.ts';
import { type MeshRuntime, meshPaths } from '../runtime.ts';
import {
  chooseBaseline,
  increaseSince,
  readTrafficSamples,
  recordTrafficSample,
  type TrafficSample,
} from './traffic-window.ts';

const T0 = Date.parse('2030-01-01T01:00:00Z');
const counter = (value: number, reason = 'plaintext_strict'): ProxySamples[] => [
  {
    service: 'cart',
    samples: [{ name: 'mutual_inbound_refused_total', labels: { reason, port: '7002' }, value }],
  },
];
const sample = (agoMs: number, value: number): TrafficSample => ({
  atMs: T0 - agoMs,
  proxies: counter(value),
});

test('increase: moved counters only; a lower value is a reset; a series new since then counts in full', () => {
  assert.deepEqual(increaseSince(counter(5), counter(5)), [{ service: 'cart', samples: [] }]);
  assert.equal(increaseSince(counter(7), counter(5))[0]!.samples[0]!.value, 2);
  assert.equal(increaseSince(counter(3), counter(5))[0]!.samples[0]!.value, 3);
  assert.equal(increaseSince(counter(3, 'other'), counter(5))[0]!.samples[0]!.value, 3);
  assert.equal(increaseSince(counter(4), undefined)[0]!.samples[0]!.value, 4);
});

test('baseline: the newest sample at least a window old, else mesh start, else the oldest, else none', () => {
  const options = { nowMs: T0, windowMs: 60_000, meshStartedMs: T0 - 3_600_000 };
  const table: Array<[string, TrafficSample[], number | undefined, string, string]> = [
    [
      'sample',
      [sample(3_000_000, 1), sample(61_000, 2), sample(10_000, 3)],
      61_000,
      'sample',
      'the last 60 s of traffic (compared with a sample from 61 s ago)',
    ],
    ['exact', [sample(60_000, 2)], 60_000, 'sample', 'the last 60 s of traffic'],
    ['partial', [sample(20_000, 2), sample(10_000, 3)], 20_000, 'partial', 'the last 20 s of traffic only'],
    ['lifetime', [], undefined, 'lifetime', 'since the sidecars started'],
    ['future samples (an injected clock) are ignored', [sample(-5_000, 9)], undefined, 'lifetime', 'since'],
  ];
  for (const [name, history, agoMs, basis, text] of table) {
    const { baseline, window } = chooseBaseline(history, options);
    assert.equal(baseline === undefined ? undefined : T0 - baseline.atMs, agoMs, name);
    assert.equal(window.basis, basis, name);
    assert.ok(window.description.includes(text), `${name}: ${window.description}`);
  }
  const young = chooseBaseline([sample(20_000, 2)], { ...options, meshStartedMs: T0 - 30_000 });
  assert.equal(young.baseline, undefined, 'a mesh younger than the window: all its counters are recent');
  assert.equal(young.window.basis, 'mesh-start');
  assert.equal(young.window.description, 'the last 60 s of traffic (the mesh started 30 s ago)');
  const before = chooseBaseline([sample(3_000_000, 1)], { ...options, meshStartedMs: T0 - 600_000 });
  assert.equal(before.window.basis, 'lifetime', 'samples of an earlier mesh are not compared');
});

test('stored samples: kept per mesh start, thinned with age, unreadable files ignored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-traffic-window-'));
  try {
    const paths = meshPaths(dir);
    const runtime = { startedAt: '2030-01-01T00:00:00.000Z' } as MeshRuntime;
    assert.deepEqual(await readTrafficSamples(paths, runtime), []);
    // A run every 2 s for 10 minutes.
    for (let agoMs = 600_000; agoMs >= 0; agoMs -= 2000) {
      await recordTrafficSample(paths, runtime, sample(agoMs, 600_000 - agoMs));
    }
    const kept = await readTrafficSamples(paths, runtime);
    assert.ok(kept.length < 60, `${kept.length} samples kept`);
    assert.equal(kept.at(-1)!.atMs, T0);
    assert.equal(kept[0]!.atMs, T0 - 600_000, 'the oldest is kept');
    const { baseline } = chooseBaseline(kept, { nowMs: T0 + 1, windowMs: 60_000, meshStartedMs: undefined });
    assert.ok(T0 + 1 - baseline!.atMs < 70_000, 'a sample close to a window ago is there');
    assert.deepEqual(await readTrafficSamples(paths, { startedAt: 'another mesh' } as MeshRuntime), []);
    await writeFile(join(dir, 'traffic-samples.json'), 'not json');
    assert.deepEqual(await readTrafficSamples(paths, runtime), []);
    await recordTrafficSample(paths, runtime, sample(0, 1));
    assert.match(await readFile(join(dir, 'traffic-samples.json'), 'utf8'), /"version":2/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stored samples: each label set once, so a big mesh keeps an hour in a few MB', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-traffic-window-'));
  try {
    const paths = meshPaths(dir);
    const runtime = { startedAt: '2030-01-01T00:00:00.000Z' } as MeshRuntime;
    // 40 services all calling each other: per sidecar a series per peer, both SPIFFE IDs on each.
    const names = Array.from({ length: 40 }, (_, at) => `s${at}`);
    const id = (name: string) => `spiffe://cluster.local/ns/scale/sa/${name}`;
    const meshSample = (agoMs: number, value: number): TrafficSample => ({
      atMs: T0 - agoMs,
      proxies: names.map((service) => ({
        service,
        samples: names.map((peer) => ({
          name: 'mutual_inbound_connections_total',
          labels: {
            tls: 'true',
            client_id: id(peer),
            server_id: id(service),
            no_tls_reason: '',
            port: '8080',
          },
          value,
        })),
      })),
    });
    await recordTrafficSample(paths, runtime, meshSample(600_000, 1));
    const one = (await readFile(join(dir, 'traffic-samples.json'))).length;
    for (let agoMs = 590_000; agoMs >= 0; agoMs -= 10_000)
      await recordTrafficSample(paths, runtime, meshSample(agoMs, 600_000 - agoMs));
    const kept = await readTrafficSamples(paths, runtime);
    const many = (await readFile(join(dir, 'traffic-samples.json'))).length;
    assert.ok(kept.length >= 20, `${kept.length} samples kept`);
    // Version 1 wrote every label in every sample: ${kept.length} times one sample's size.
    assert.ok(many < 6 * one, `${kept.length} samples take ${many} bytes, one took ${one}`);
    const last = kept.at(-1)!.proxies[3]!.samples[5]!;
    assert.deepEqual(last, {
      name: 'mutual_inbound_connections_total',
      labels: { tls: 'true', client_id: id('s5'), server_id: id('s3'), no_tls_reason: '', port: '8080' },
      value: 600_000,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
