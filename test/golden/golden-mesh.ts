// A fixed mesh for the golden tests: the CA and certificates of test/golden/fixtures, real tiny
// servers for the identity service (admin and TLS API) and the sidecars' admin endpoints, canned
// counters, a policy directory and runtime.json, all read on a clock fixed at GOLDEN_NOW. Only the
// loopback ports and the temporary directory vary; `scrub` replaces them.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { runCli } from '../../src/cli/index.ts';
import { fixedClock } from '../../src/clock.ts';
import { type CaStatusAnswer, summarizeCertificate } from '../../src/identity/index.ts';
import { parsePrometheusText, processStartTicks } from '../../src/mesh/index.ts';
import { parseCertificatesPem } from '../../src/pki/index.ts';
import { type FakeAdmin, refusingUrl, startFakeAdmin } from '../dashboard/fake-mesh.ts';
import { GOLDEN_DIR } from './golden.ts';
import { GOLDEN_NOW, GOLDEN_TRUST_DOMAIN } from './make-fixtures.ts';

const FIXTURES = join(GOLDEN_DIR, 'fixtures');
const td = GOLDEN_TRUST_DOMAIN;
const id = (name: string) => `spiffe://${td}/ns/shop/sa/${name}`;
const iso = (ms: number) => new Date(ms).toISOString();

const tls = (client: string, server: string) =>
  `tls="true",client_id="${id(client)}",server_id="${id(server)}",no_tls_reason=""`;
const plain = (server: string, reason: string) =>
  `tls="no_identity",client_id="",server_id="${id(server)}",no_tls_reason="${reason}"`;

/** cart's counters; `recent` adds what happened within the last minute. */
function cartMetrics(recent: boolean) {
  return `# HELP mutual_inbound_connections_total Inbound connections.
# TYPE mutual_inbound_connections_total counter
mutual_inbound_connections_total{${tls('web', 'cart')},port="7002"} ${recent ? 14 : 12}
mutual_inbound_http_requests_total{${tls('web', 'cart')},port="7002",method="GET",status_code="200"} ${recent ? 130 : 120}
mutual_inbound_http_requests_total{${tls('web', 'cart')},port="7002",method="POST",status_code="503"} 3
mutual_inbound_received_bytes_total{${tls('web', 'cart')},port="7002"} 20480
mutual_inbound_sent_bytes_total{${tls('web', 'cart')},port="7002"} 1048576
mutual_authorization_decisions_total{decision="allow",policy="shop/cart-from-web",client_id="${id('web')}",port="7002"} 123
mutual_inbound_connections_total{${plain('cart', 'no_client_hello')},port="7002"} 5
mutual_authorization_decisions_total{decision="deny",policy="",client_id="",port="7002"} 5
mutual_inbound_refused_total{reason="plaintext_strict",port="7002"} ${recent ? 2 : 0}
mutual_tls_handshake_failures_total{direction="inbound",reason="expired"} ${recent ? 3 : 1}
mutual_tls_handshake_failures_total{direction="inbound",reason="unknown_authority"} ${recent ? 4 : 0}
`;
}

function webMetrics(recent: boolean) {
  return `mutual_outbound_connections_total{${tls('web', 'cart')},destination="127.0.0.1:7102"} ${recent ? 14 : 12}
mutual_outbound_sent_bytes_total{${tls('web', 'cart')},destination="127.0.0.1:7102"} 20480
mutual_outbound_received_bytes_total{${tls('web', 'cart')},destination="127.0.0.1:7102"} 1048576
mutual_outbound_refused_total{reason="wrong_identity",destination="127.0.0.1:7102"} ${recent ? 1 : 0}
mutual_tls_handshake_failures_total{direction="outbound",reason="wrong_identity"} ${recent ? 1 : 0}
mutual_outbound_connections_total{tls="no_identity",client_id="${id('web')}",server_id="",no_tls_reason="not_meshed",destination="192.0.2.10:5432"} 4
mutual_outbound_sent_bytes_total{tls="no_identity",client_id="${id('web')}",server_id="",no_tls_reason="not_meshed",destination="192.0.2.10:5432"} 900
`;
}

const POLICIES = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: cart-from-web, namespace: shop }
spec:
  selector: { matchLabels: { app: cart } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["${td}/ns/shop/sa/web"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-only, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["${td}/ns/shop/sa/web"] } }] }]
`;

/** What a sidecar's /identity answers for a chain of the fixtures. */
async function identityAnswer(file: string, lastRenewal: Record<string, unknown>) {
  const chainPem = await readFile(join(FIXTURES, file), 'utf8');
  const [leaf] = parseCertificatesPem(chainPem, file);
  const lifetimeMs = leaf!.notAfterMs - leaf!.notBeforeMs;
  return {
    spiffeId: leaf!.uris[0],
    certificateChainPem: chainPem,
    trustBundlePem: await readFile(join(FIXTURES, 'ca', 'bundle.pem'), 'utf8'),
    notBefore: iso(leaf!.notBeforeMs),
    notAfter: iso(leaf!.notAfterMs),
    renewAt: iso(leaf!.notBeforeMs + 0.7 * lifetimeMs),
    lastRenewal,
  };
}

/** What the identity service's GET /ca answers: the fixtures' issuer and bundle, no change pending. */
async function caInForce(): Promise<CaStatusAnswer> {
  const bundlePem = await readFile(join(FIXTURES, 'ca', 'bundle.pem'), 'utf8');
  const [issuer] = parseCertificatesPem(await readFile(join(FIXTURES, 'ca', 'issuer.crt'), 'utf8'), 'issuer');
  return {
    issuer: { ...summarizeCertificate(issuer!.der), file: 'ca/issuer.crt' },
    trustBundle: {
      file: 'ca/bundle.pem',
      sequence: 1,
      roots: parseCertificatesPem(bundlePem, 'bundle').map((root) => summarizeCertificate(root.der)),
      pem: bundlePem,
    },
    heldTrustBundle: null,
    rootsInUse: [],
    lastReload: { issuer: null, trustAnchors: null },
  };
}

export interface GoldenMesh {
  readonly dir: string;
  /** A fresh state directory (CA, runtime.json, a traffic sample from 90 s ago) under `dir`. */
  makeState(name: string): Promise<string>;
  /** Counters with (true) or without (false) traffic in the last minute. */
  setRecent(isRecent: boolean): void;
  run(args: readonly string[]): Promise<{ code: number; stdout: string }>;
  scrub(text: string): string;
  close(): Promise<void>;
}

export async function startGoldenMesh(): Promise<GoldenMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-golden-'));
  const date = new Date(GOLDEN_NOW).toUTCString();
  const web = await startFakeAdmin(
    webMetrics(true),
    await identityAnswer('web.pem', { result: 'ok', at: iso(GOLDEN_NOW - 2 * 3_600_000) }),
    { date },
  );
  const cart = await startFakeAdmin(
    cartMetrics(true),
    await identityAnswer('cart.pem', {
      result: 'failed',
      at: iso(GOLDEN_NOW - 600_000),
      error: { code: 'MUTUAL_WORKLOAD_CERTIFY_FAILED', message: 'the identity service answered 503' },
    }),
    { date },
  );
  const identityAdmin = await startFakeAdmin('', {}, { date, json: { '/ca': await caInForce() } });
  const api: Server = createServer({
    cert: await readFile(join(FIXTURES, 'identity-service.pem')),
    key: await readFile(join(FIXTURES, 'identity-service.key')),
    minVersion: 'TLSv1.3',
  });
  api.on('secureConnection', (socket) => socket.end());
  api.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const apiUrl = `https://127.0.0.1:${(api.address() as AddressInfo).port}`;
  const payments = await refusingUrl();
  const admins: FakeAdmin[] = [web, cart, identityAdmin];
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'shop.yaml'), POLICIES);
  const self = { pid: process.pid, startTicks: processStartTicks(process.pid) ?? 0 };
  const proc = (pid: { pid: number; startTicks: number }, argv: string[]) => ({
    ...pid,
    log: '/dev/null',
    argv,
  });
  const service = (
    name: string,
    adminUrl: string,
    appPort: number,
    app: { pid: number; startTicks: number },
  ) => ({
    name,
    namespace: 'shop',
    serviceAccount: name,
    spiffeId: id(name),
    labels: { app: name },
    ports: [{ port: 8080, protocol: 'http', appPort, inboundPort: appPort + 100 }],
    upstreams: [],
    adminUrl,
    app: proc(app, ['node', `${name}.js`]),
    proxy: proc(self, ['mutual', 'proxy', 'run', '--policy-dir', policyDir, '--namespace', 'shop']),
  });
  const runtime = (stateDir: string) => ({
    version: 1,
    file: 'mesh.yaml',
    trustDomain: td,
    policyDir,
    stateDir,
    startedAt: iso(GOLDEN_NOW - 2 * 3_600_000),
    supervisor: self,
    identity: { ...proc(self, []), apiUrl, adminUrl: identityAdmin.url },
    services: [
      service('web', web.url, 7001, self),
      service('cart', cart.url, 7002, self),
      service('payments', payments, 7003, { pid: 999_999, startTicks: 1 }),
    ],
  });

  const mesh: GoldenMesh = {
    dir,
    async makeState(name) {
      const stateDir = join(dir, name);
      await mkdir(stateDir);
      await cp(join(FIXTURES, 'ca'), join(stateDir, 'ca'), { recursive: true });
      const written = runtime(stateDir);
      await writeFile(join(stateDir, 'runtime.json'), JSON.stringify(written));
      // What `mutual check` kept 90 s ago: the counters without the last minute's traffic.
      const sample = (service: string, text: string) => ({
        service,
        samples: parsePrometheusText(text).map(({ name: metric, labels, value }) => [metric, labels, value]),
      });
      await writeFile(
        join(stateDir, 'traffic-samples.json'),
        JSON.stringify({
          version: 1,
          meshStartedAt: written.startedAt,
          samples: [
            {
              atMs: GOLDEN_NOW - 90_000,
              proxies: [sample('web', webMetrics(false)), sample('cart', cartMetrics(false))],
            },
          ],
        }),
      );
      return stateDir;
    },
    setRecent(isRecent) {
      web.metrics = webMetrics(isRecent);
      cart.metrics = cartMetrics(isRecent);
    },
    async run(args) {
      let stdout = '';
      const code = await runCli([...args], {
        clock: fixedClock(GOLDEN_NOW),
        cwd: dir,
        isColor: false,
        write: (text) => {
          stdout += text;
        },
        writeError: (text) => {
          stdout += text;
        },
        setExitCode: () => {},
        untilShutdown: () => new Promise(() => {}),
      });
      return { code, stdout };
    },
    scrub(text) {
      return text.replaceAll(dir, '<tmp>').replace(/127\.0\.0\.1:\d{2,5}/g, '127.0.0.1:<port>');
    },
    async close() {
      await Promise.all(admins.map((admin) => admin.close()));
      await new Promise<void>((resolve) => api.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return mesh;
}
