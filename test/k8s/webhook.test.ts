// The injector webhook over real HTTPS (a throwaway CA and serving certificate from src/pki, the
// client verifying the Service DNS name like the API server does) with real admission.k8s.io/v1
// AdmissionReviews: the JSON Patch it returns, applied with fast-json-patch, gives exactly what
// `mutual inject` gives offline and validates; hostile input is refused while it keeps serving;
// the trust anchors it writes into proxies follow their (ConfigMap) file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import fastJsonPatch from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1/Pod';
import { systemClock } from '../../src/clock.ts';
import {
  DEFAULT_INJECT_OPTIONS,
  type InjectOptions,
  type InjectorWebhook,
  injectPod,
  loadTrustAnchors,
  MAX_ADMISSION_REVIEW_BYTES,
  type PodLike,
  startInjectorWebhook,
} from '../../src/k8s/index.ts';
import { createTrustAnchor, generateKeyPair, issueSvid, privateKeyToPem } from '../../src/pki/index.ts';
import { createTestPki, metricValue, type TestPki, waitUntil } from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

const { applyPatch, deepClone } = fastJsonPatch;
const SERVICE_NAME = 'mutual-injector.mutual-system.svc';

let dir: string;
let pki: TestPki;
let webhook: InjectorWebhook;
const certFile = () => join(dir, 'tls', 'tls.crt');
const keyFile = () => join(dir, 'tls', 'tls.key');
const anchorsFile = () => join(dir, 'anchors', 'ca-bundle.crt');

/** What `mutual inject --trust-anchors-file` would use offline, with the anchors on disk now. */
async function offlineOptions(): Promise<InjectOptions> {
  return { ...DEFAULT_INJECT_OPTIONS, trustAnchorsPem: (await loadTrustAnchors(anchorsFile())).pem };
}

async function servingPair() {
  const keys = await generateKeyPair();
  const svid = await issueSvid(pki.issuer, {
    spiffeId: 'spiffe://cluster.local/ns/mutual-system/sa/injector',
    publicKey: keys.publicKey,
    clock: systemClock,
    dnsNames: [SERVICE_NAME],
  });
  return { cert: svid.chainPem, key: privateKeyToPem(keys.privateKey), serial: svid.serialNumber };
}

/** Replaces a file the way a Secret volume update does: written aside, renamed over. */
async function replaceFile(path: string, text: string) {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-'));
  pki = await createTestPki(join(dir, 'pki'));
  const pair = await servingPair();
  await writeFile(join(dir, 'anchor.pem'), pki.anchor.certificatePem);
  await mkdir(join(dir, 'tls'));
  await writeFile(certFile(), pair.cert);
  await writeFile(keyFile(), pair.key);
  await mkdir(join(dir, 'anchors'));
  await writeFile(anchorsFile(), pki.anchor.certificatePem);
  webhook = await startInjectorWebhook({
    listen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    tls: { certFile: certFile(), keyFile: keyFile() },
    trustAnchorsFile: anchorsFile(),
    inject: DEFAULT_INJECT_OPTIONS,
    certPollIntervalMs: 200,
  });
});

after(async () => {
  webhook?.destroy();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
  json: Record<string, unknown>;
  peer: PeerCertificate;
}

/** One request on a fresh TLS connection, verifying the server as the API server would (CA + DNS name). */
function post(
  path: string,
  body: string | Buffer,
  options: { method?: string; url?: string } = {},
): Promise<Answer> {
  const url = new URL(path, options.url ?? webhook.url);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'POST',
        ca: pki.anchor.certificatePem,
        servername: SERVICE_NAME,
        agent: false,
        minVersion: 'TLSv1.2',
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        const peer = (response.socket as TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: response.statusCode ?? 0, body: text, json, peer });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A pod as the API server hands it to mutating webhooks: created by a ReplicaSet, defaults applied, SA token volume added. */
function replicaSetPod(
  annotations: Record<string, string> = {},
  spec: Record<string, unknown> = {},
): PodLike {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-7d4b9c6f5d-',
      namespace: 'demo',
      labels: { app: 'web', 'pod-template-hash': '7d4b9c6f5d' },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-01-01T00:00:00Z', ...annotations },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'web-7d4b9c6f5d',
          uid: '0b4f9a2e-5c1d-4e8f-9a7b-3c2d1e0f9a8b',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      serviceAccountName: 'web',
      containers: [
        {
          name: 'web',
          image: 'nginx:1.27',
          ports: [{ containerPort: 8080, protocol: 'TCP' }],
          readinessProbe: { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }, periodSeconds: 10 },
          resources: {},
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
          volumeMounts: [
            {
              name: 'kube-api-access-x7k2p',
              readOnly: true,
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
            },
          ],
        },
      ],
      volumes: [
        {
          name: 'kube-api-access-x7k2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
      ...spec,
    },
  };
}

function review(object: unknown, overrides: Record<string, unknown> = {}, uid = crypto.randomUUID()): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'demo',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '6f1c2d3e-0000-4000-8000-000000000001',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      ...overrides,
    },
  });
}

function responseOf(answer: Answer) {
  assert.equal(answer.status, 200, answer.body);
  assert.equal(answer.json.apiVersion, 'admission.k8s.io/v1');
  assert.equal(answer.json.kind, 'AdmissionReview');
  return answer.json.response as {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string };
  };
}

test('an annotated pod: same uid, a base64 JSONPatch that gives exactly the offline injection, which validates', async () => {
  const pod = replicaSetPod({
    'mutual.dev/inject': 'enabled',
    'config.mutual.dev/skip-outbound-subnets': '10.96.0.0/12',
  });
  const uid = '705ab4f5-6393-11e8-b7cc-42010a800002';
  const response = responseOf(await post('/inject', review(pod, {}, uid)));
  assert.equal(response.uid, uid);
  assert.equal(response.allowed, true);
  assert.equal(response.patchType, 'JSONPatch');
  const patch = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8'));
  // validate=true: every operation must be well formed and its path must exist where it should.
  const patched = applyPatch(deepClone(pod), patch, true, false).newDocument;
  const offline = injectPod(pod, await offlineOptions());
  assert.equal(offline.kind, 'injected');
  assert.deepEqual(patched, offline.kind === 'injected' ? offline.pod : undefined);
  new Pod(patched as never).validate();
  // Keys with "/" travel escaped (RFC 6901) as single adds into the existing maps.
  const paths = (patch as { op: string; path: string }[]).map(
    (operation) => `${operation.op} ${operation.path}`,
  );
  assert.ok(paths.includes('add /metadata/annotations/mutual.dev~1proxy-injected'), paths.join('\n'));
  assert.ok(paths.includes('add /metadata/labels/mutual.dev~1proxy-injected'), paths.join('\n'));
});

test('POST /inject: a pod without the annotation is allowed untouched; POST /inject/namespace injects it', async () => {
  const pod = replicaSetPod();
  const byPod = responseOf(await post('/inject', review(pod)));
  assert.equal(byPod.allowed, true);
  assert.equal(byPod.patch, undefined);
  const byNamespace = responseOf(await post('/inject/namespace', review(pod)));
  assert.equal(byNamespace.patchType, 'JSONPatch');
  const patched = applyPatch(
    deepClone(pod),
    JSON.parse(Buffer.from(byNamespace.patch ?? '', 'base64').toString()),
    true,
    false,
  ).newDocument;
  new Pod(patched as never).validate();
});

test('pod-level disabled and hostNetwork are honoured even in an opted-in namespace; hostNetwork gets a warning', async () => {
  const disabled = responseOf(
    await post('/inject/namespace', review(replicaSetPod({ 'mutual.dev/inject': 'disabled' }))),
  );
  assert.deepEqual([disabled.allowed, disabled.patch, disabled.warnings], [true, undefined, undefined]);
  const host = responseOf(await post('/inject/namespace', review(replicaSetPod({}, { hostNetwork: true }))));
  assert.equal(host.allowed, true);
  assert.equal(host.patch, undefined);
  assert.match(host.warnings?.[0] ?? '', /not injected: hostNetwork: true/);
  // A pod for a Windows node (mixed clusters): the Linux proxy would keep it from starting.
  const windows = responseOf(
    await post(
      '/inject/namespace',
      review(replicaSetPod({}, { nodeSelector: { 'kubernetes.io/os': 'windows' } })),
    ),
  );
  assert.deepEqual([windows.allowed, windows.patch], [true, undefined]);
  assert.match(
    windows.warnings?.[0] ?? '',
    /not injected: nodeSelector kubernetes\.io\/os: windows: the proxy and its iptables rules are Linux only/,
  );
});

test('mutual.dev/inject as a pod label (as Istio users write sidecar.istio.io/inject) opts in on POST /inject and out on /inject/namespace; an annotation says otherwise and wins', async () => {
  const labelled = (value: string, annotations: Record<string, string> = {}) => {
    const pod = replicaSetPod(annotations);
    (pod.metadata!.labels as Record<string, string>)['mutual.dev/inject'] = value;
    return pod;
  };
  const optedIn = responseOf(await post('/inject', review(labelled('enabled'))));
  assert.equal(optedIn.patchType, 'JSONPatch');
  const optedOut = responseOf(await post('/inject/namespace', review(labelled('disabled'))));
  assert.deepEqual([optedOut.allowed, optedOut.patch], [true, undefined]);
  const annotationWins = responseOf(
    await post('/inject/namespace', review(labelled('disabled', { 'mutual.dev/inject': 'enabled' }))),
  );
  assert.equal(annotationWins.patchType, 'JSONPatch');
  const notIn = responseOf(
    await post('/inject', review(labelled('enabled', { 'mutual.dev/inject': 'disabled' }))),
  );
  assert.equal(notIn.patch, undefined);
  // Offline the same: the label opts out, the report says which.
  const offline = injectPod(labelled('disabled'), await offlineOptions());
  assert.deepEqual(offline, {
    kind: 'skipped',
    reason: 'disabled',
    message: 'label mutual.dev/inject: disabled',
  });
});

test('an already injected pod gets no patch (idempotent: reinvocation changes nothing)', async () => {
  const offline = injectPod(replicaSetPod({ 'mutual.dev/inject': 'enabled' }), await offlineOptions());
  assert.equal(offline.kind, 'injected');
  const response = responseOf(await post('/inject', review(offline.kind === 'injected' ? offline.pod : {})));
  assert.deepEqual([response.allowed, response.patch], [true, undefined]);
});

test('an unusable annotation refuses the pod with a 400 status naming it, rather than start it unmeshed', async () => {
  const pod = replicaSetPod({ 'mutual.dev/inject': 'enabled', 'config.mutual.dev/default-mode': 'strict' });
  const response = responseOf(await post('/inject', review(pod)));
  assert.equal(response.allowed, false);
  assert.equal(response.status?.code, 400);
  assert.match(response.status?.message ?? '', /config\.mutual\.dev\/default-mode: "strict" is not a mode/);
});

test('proxy resources: a bad quantity or a request above its limit refuses the pod with the exact reason; good ones reach the patch', async () => {
  const refusal = async (annotations: Record<string, string>) => {
    const pod = replicaSetPod({ 'mutual.dev/inject': 'enabled', ...annotations });
    const response = responseOf(await post('/inject', review(pod)));
    assert.deepEqual([response.allowed, response.patch, response.status?.code], [false, undefined, 400]);
    const message = response.status?.message ?? '';
    return message.slice(message.indexOf(': ') + 2, message.lastIndexOf(' (docs/kubernetes.md'));
  };
  assert.equal(
    await refusal({ 'config.mutual.dev/proxy-memory-limit': '1Gi1' }),
    'config.mutual.dev/proxy-memory-limit: "1Gi1" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi',
  );
  assert.equal(
    await refusal({ 'config.mutual.dev/proxy-cpu-request': '-1' }),
    'config.mutual.dev/proxy-cpu-request: "-1" is negative: write e.g. 100m or 0.5',
  );
  assert.equal(
    await refusal({ 'config.mutual.dev/proxy-memory-request': '3Gi' }),
    "config.mutual.dev/proxy-memory-request: 3Gi is more than the memory limit 1Gi (the injector's default; annotate config.mutual.dev/proxy-memory-limit to change it): Kubernetes refuses a request above its limit; lower the request or raise the limit",
  );
  const pod = replicaSetPod({
    'mutual.dev/inject': 'enabled',
    'config.mutual.dev/proxy-memory-request': '3Gi',
    'config.mutual.dev/proxy-memory-limit': '4Gi',
  });
  const response = responseOf(await post('/inject', review(pod)));
  assert.equal(response.allowed, true);
  const patched = applyPatch(
    deepClone(pod),
    JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')),
    true,
    false,
  ).newDocument as { spec: { initContainers: { name: string; resources: unknown }[] } };
  assert.deepEqual(patched.spec.initContainers.find((c) => c.name === 'mutual-proxy')?.resources, {
    requests: { cpu: '100m', memory: '3Gi' },
    limits: { cpu: '2', memory: '4Gi' },
  });
});

test('a non-Pod object and a non-CREATE operation are allowed unchanged (a warning for the non-Pod)', async () => {
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web' },
    spec: { ports: [{ port: 80 }] },
  };
  const notPod = responseOf(
    await post(
      '/inject',
      review(service, {
        kind: { group: '', version: 'v1', kind: 'Service' },
        resource: { group: '', version: 'v1', resource: 'services' },
      }),
    ),
  );
  assert.deepEqual([notPod.allowed, notPod.patch], [true, undefined]);
  assert.match(notPod.warnings?.[0] ?? '', /Service left unchanged: only Pods are injected/);
  const update = responseOf(
    await post('/inject', review(replicaSetPod({ 'mutual.dev/inject': 'enabled' }), { operation: 'UPDATE' })),
  );
  assert.deepEqual([update.allowed, update.patch], [true, undefined]);
});

test('hostile input: garbage, a body over the cap, the wrong apiVersion or kind, GET, unknown path — each refused with its code, and the webhook keeps serving', async () => {
  const garbage = await post('/inject', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7b, 0x22, 0xfe]));
  assert.equal(garbage.status, 400);
  assert.equal((garbage.json.error as { code: string }).code, 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID');
  assert.match((garbage.json.error as { message: string }).message, /not JSON/);

  const huge = await post('/inject', Buffer.alloc(MAX_ADMISSION_REVIEW_BYTES + 1, 0x20));
  assert.equal(huge.status, 413);
  assert.equal((huge.json.error as { code: string }).code, 'MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE');

  const v1beta1 = await post(
    '/inject',
    review(replicaSetPod()).replace('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'),
  );
  assert.equal(v1beta1.status, 400);
  assert.match(
    (v1beta1.json.error as { message: string }).message,
    /apiVersion "admission\.k8s\.io\/v1beta1" is not supported/,
  );

  const wrongKind = await post(
    '/inject',
    JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Pod', request: {} }),
  );
  assert.equal(wrongKind.status, 400);
  assert.match((wrongKind.json.error as { message: string }).message, /kind "Pod" is not AdmissionReview/);

  const noUid = await post(
    '/inject',
    JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }),
  );
  assert.equal(noUid.status, 400);
  assert.match((noUid.json.error as { message: string }).message, /no uid/);

  // With a uid, a Pod CREATE without its pod is refused in a review, not with an HTTP error.
  const noObject = responseOf(await post('/inject', review(null)));
  assert.equal(noObject.allowed, false);
  assert.match(noObject.status?.message ?? '', /has no object/);

  assert.equal((await post('/inject', '', { method: 'GET' })).status, 405);
  assert.equal((await post('/mutate', review(replicaSetPod()))).status, 404);

  const still = responseOf(await post('/inject', review(replicaSetPod({ 'mutual.dev/inject': 'enabled' }))));
  assert.equal(still.patchType, 'JSONPatch');
});

test('admin: /ready, and /metrics counts admissions by result and reason', async () => {
  assert.ok(webhook.adminUrl);
  const ready = await fetch(`${webhook.adminUrl}/ready`);
  assert.equal(ready.status, 200);
  await post('/inject/namespace', review(replicaSetPod({}, { hostNetwork: true })));
  const text = await (await fetch(`${webhook.adminUrl}/metrics`)).text();
  assert.ok(metricValue(text, 'mutual_injector_admissions_total', { result: 'injected' }) >= 1);
  assert.ok(
    metricValue(text, 'mutual_injector_admissions_total', { result: 'skipped', reason: 'host-network' }) >= 1,
  );
  assert.ok(
    metricValue(text, 'mutual_injector_admissions_total', {
      result: 'error',
      reason: 'MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE',
    }) >= 1,
  );
  assert.ok(metricValue(text, 'mutual_injector_certificate_expiry_timestamp_seconds') > Date.now() / 1000);
});

test('serving certificate rotation: a new pair on disk is served to new connections; a mismatched pair is refused and the last good one stays', async () => {
  const next = await servingPair();
  await replaceFile(keyFile(), next.key);
  await replaceFile(certFile(), next.cert);
  const serial = (hex: string) => hex.toUpperCase().replace(/^0+/, '');
  await waitUntil(
    async () =>
      serial((await post('/inject', review(replicaSetPod()))).peer.serialNumber) === serial(next.serial),
    'the new serving certificate',
  );

  const other = await servingPair();
  await replaceFile(certFile(), other.cert); // the key on disk is still next's: they do not match
  await waitUntil(async () => {
    const text = await (await fetch(`${webhook.adminUrl}/metrics`)).text();
    return metricValue(text, 'mutual_injector_certificate_reloads_total', { result: 'refused' }) >= 1;
  }, 'the mismatched pair refused');
  const answer = await post('/inject', review(replicaSetPod()));
  assert.equal(answer.status, 200);
  assert.equal(serial(answer.peer.serialNumber), serial(next.serial));
  await replaceFile(certFile(), next.cert); // put the good pair back for the other tests
});

test('`mutual inject serve` (the real binary) serves with the flags it is given (also those `inject` declares), answers ready and stops on SIGTERM; a bad key pair does not start', async () => {
  const bin = join(repoRoot(), 'bin', 'mutual.js');
  const child = spawn(process.execPath, [
    bin,
    'inject',
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
    '--cert',
    certFile(),
    '--key',
    keyFile(),
    '--trust-anchors-file',
    anchorsFile(),
    '--image',
    'registry.local/mutual:test',
  ]);
  try {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    await waitUntil(async () => /listening on https:\/\//.test(stdout), 'the webhook to listen');
    const url = /listening on (https:\/\/\S+)/.exec(stdout)?.[1] ?? '';
    const adminUrl = /\(admin (http:\/\/\S+)\)/.exec(stdout)?.[1] ?? '';
    assert.equal((await fetch(`${adminUrl}/ready`)).status, 200);
    const response = responseOf(
      await post(url, review(replicaSetPod({ 'mutual.dev/inject': 'enabled' })), { url }),
    );
    assert.equal(response.patchType, 'JSONPatch');
    const patch = Buffer.from(response.patch ?? '', 'base64').toString('utf8');
    assert.match(patch, /"image":"registry\.local\/mutual:test"/);
    assert.match(patch, /MUTUAL_PROXY_IDENTITY_BUNDLE_PEM/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
  }
  const other = await servingPair();
  const badKey = join(dir, 'other.key');
  await writeFile(badKey, other.key);
  const bad = spawn(process.execPath, [
    bin,
    'inject',
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--admin-listen',
    'off',
    '--cert',
    certFile(),
    '--key',
    badKey,
    '--trust-anchors-file',
    anchorsFile(),
  ]);
  let stderr = '';
  bad.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [badCode] = await once(bad, 'exit');
  assert.equal(badCode, 1);
  assert.match(stderr, /error\[MUTUAL_K8S_WEBHOOK_CERT_INVALID\]/);
});

/** The proxy's environment in the patched pod the webhook answers for a fresh opted-in pod. */
async function injectedProxyEnv(): Promise<Record<string, string>> {
  const pod = replicaSetPod({ 'mutual.dev/inject': 'enabled' });
  const response = responseOf(await post('/inject', review(pod)));
  const patched = applyPatch(
    deepClone(pod),
    JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString()),
    true,
    false,
  ).newDocument as { spec: { initContainers: { name: string; env?: { name: string; value?: string }[] }[] } };
  const proxy = patched.spec.initContainers.find((container) => container.name === 'mutual-proxy');
  return Object.fromEntries((proxy?.env ?? []).map((entry) => [entry.name, entry.value ?? '']));
}

test('trust anchors: written into each proxy from the watched file; two roots reach new pods, a bad file is refused and the last good anchors stay', async () => {
  const roots = (pem: string | undefined) => (pem ?? '').match(/BEGIN CERTIFICATE/g)?.length ?? 0;
  const first = await injectedProxyEnv();
  assert.equal(first.MUTUAL_PROXY_IDENTITY_BUNDLE_PEM, pki.anchor.certificatePem);
  assert.equal(roots(first.MUTUAL_PROXY_IDENTITY_BUNDLE_PEM), 1);

  // Step 1 of an anchor rotation: the ConfigMap now holds the old and the new root.
  const next = await createTrustAnchor({ trustDomain: 'cluster.local', clock: systemClock });
  const both = `${pki.anchor.certificatePem}${next.certificatePem}`;
  await replaceFile(anchorsFile(), both);
  await waitUntil(
    async () => (await injectedProxyEnv()).MUTUAL_PROXY_IDENTITY_BUNDLE_PEM === both,
    'new pods to get both roots',
  );
  const metrics = async () => (await fetch(`${webhook.adminUrl}/metrics`)).text();
  assert.equal(metricValue(await metrics(), 'mutual_injector_trust_anchors_roots'), 2);

  // A key where roots belong (a broken ConfigMap edit) is refused; pods keep getting both roots.
  await replaceFile(anchorsFile(), privateKeyToPem((await generateKeyPair()).privateKey));
  await waitUntil(
    async () =>
      metricValue(await metrics(), 'mutual_injector_trust_anchors_reloads_total', { result: 'refused' }) >= 1,
    'the bad anchors refused',
  );
  assert.equal((await injectedProxyEnv()).MUTUAL_PROXY_IDENTITY_BUNDLE_PEM, both);
  await replaceFile(anchorsFile(), pki.anchor.certificatePem);
  await waitUntil(
    async () => (await injectedProxyEnv()).MUTUAL_PROXY_IDENTITY_BUNDLE_PEM === pki.anchor.certificatePem,
    'the original anchors back',
  );
});

test('the webhook does not start without usable anchors: MUTUAL_K8S_TRUST_ANCHORS_INVALID', async () => {
  const bad = join(dir, 'not-anchors.pem');
  await writeFile(bad, 'not a certificate\n');
  await assert.rejects(
    startInjectorWebhook({
      listen: { host: '127.0.0.1', port: 0 },
      tls: { certFile: certFile(), keyFile: keyFile() },
      trustAnchorsFile: bad,
      inject: DEFAULT_INJECT_OPTIONS,
    }),
    (error: { code?: string; message?: string }) =>
      error.code === 'MUTUAL_K8S_TRUST_ANCHORS_INVALID' && /not-anchors\.pem/.test(error.message ?? ''),
  );
});
