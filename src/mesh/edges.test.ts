import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildEdges, edgeKey } from './edges.ts';
import { parsePrometheusText } from './prometheus-text.ts';
import type { MeshRuntime } from './runtime.ts';

const id = (name: string) => `spiffe://example.org/ns/shop/sa/${name}`;
const service = (name: string, appPort: number, inboundPort: number) => ({
  name,
  namespace: 'shop',
  serviceAccount: name,
  spiffeId: id(name),
  labels: { app: name },
  ports: [{ port: 8080, protocol: 'http' as const, appPort, inboundPort }],
  upstreams: [],
  adminUrl: 'http://127.0.0.1:1',
  app: { pid: 1, startTicks: 1, log: '', argv: [] },
  proxy: { pid: 1, startTicks: 1, log: '', argv: [] },
});
const runtime = {
  version: 1,
  file: 'mesh.yaml',
  trustDomain: 'example.org',
  stateDir: '.mutual',
  startedAt: '2030-01-01T00:00:00.000Z',
  supervisor: { pid: 1, startTicks: 1 },
  identity: { pid: 1, startTicks: 1, log: '', argv: [], apiUrl: '', adminUrl: '' },
  services: [service('web', 7001, 7101), service('cart', 7002, 7102), service('bot', 7003, 7103)],
} satisfies MeshRuntime;

const tls = (client: string, server: string) =>
  `tls="true",client_id="${id(client)}",server_id="${id(server)}",no_tls_reason=""`;
const plain = (server: string, reason: string) =>
  `tls="no_identity",client_id="",server_id="${id(server)}",no_tls_reason="${reason}"`;

const edgesOf = (proxies: Record<string, string>) =>
  buildEdges(
    runtime,
    Object.entries(proxies).map(([name, text]) => ({ service: name, samples: parsePrometheusText(text) })),
  );

test('one row per client, destination and port: denials and plaintext are counted on it', () => {
  const edges = edgesOf({
    cart: `mutual_inbound_connections_total{${tls('web', 'cart')},port="7002"} 3
mutual_inbound_http_requests_total{${tls('web', 'cart')},port="7002",method="GET",status_code="200"} 9
mutual_inbound_http_requests_total{${tls('web', 'cart')},port="7002",method="GET",status_code="503"} 1
mutual_inbound_received_bytes_total{${tls('web', 'cart')},port="7002"} 500
mutual_inbound_connections_total{${tls('bot', 'cart')},port="7002"} 1
mutual_authorization_decisions_total{decision="deny",policy="shop/cart",client_id="${id('bot')}",port="7002"} 4
mutual_inbound_connections_total{${plain('cart', 'no_client_hello')},port="7002"} 2
mutual_authorization_decisions_total{decision="deny",policy="shop/cart",client_id="",port="7002"} 2
mutual_inbound_refused_total{reason="plaintext_strict",port="7002"} 1
`,
    web: `mutual_outbound_connections_total{${tls('web', 'cart')},destination="127.0.0.1:7102"} 3
mutual_outbound_sent_bytes_total{${tls('web', 'cart')},destination="127.0.0.1:7102"} 800
mutual_outbound_refused_total{reason="connect_refused",destination="127.0.0.1:7102"} 2
mutual_outbound_connections_total{tls="no_identity",client_id="${id('web')}",server_id="",no_tls_reason="not_meshed",destination="10.9.9.9:5432"} 4
`,
  });
  const byKey = Object.fromEntries(edges.map((edge) => [edgeKey(edge), edge]));
  assert.deepEqual(Object.keys(byKey), [
    'bot→cart:8080',
    'unknown→cart:8080',
    'web→10.9.9.9:5432',
    'web→cart:8080',
  ]);
  assert.deepEqual(
    { ...byKey['web→cart:8080'], seenBy: [...byKey['web→cart:8080']!.seenBy].sort() },
    {
      source: 'web',
      destination: 'cart',
      port: 8080,
      clientId: id('web'),
      serverId: id('cart'),
      isSecured: true,
      reason: undefined,
      connections: 3,
      requests: 10,
      serverErrors: 1,
      bytes: 800,
      denied: 0,
      failed: 2,
      failure: 'connect_refused',
      seenBy: ['client', 'server'],
    },
  );
  // The client with an identity that policy denies: still one secured row, its denials on it.
  assert.equal(byKey['bot→cart:8080']!.isSecured, true);
  assert.equal(byKey['bot→cart:8080']!.denied, 4);
  // Plaintext accepted, plaintext denied by policy and plaintext refused by STRICT: one row.
  const unknown = byKey['unknown→cart:8080']!;
  assert.equal(unknown.isSecured, false);
  assert.equal(unknown.reason, 'no_client_hello, refused: plaintext_strict');
  assert.equal(unknown.denied, 3);
  assert.equal(unknown.connections, 3);
  assert.equal(byKey['web→10.9.9.9:5432']!.reason, 'not_meshed');
  assert.equal(byKey['web→10.9.9.9:5432']!.port, 5432);
});

test('rows that only failed, or only denied without an identity, say so', () => {
  const edges = edgesOf({
    web: `mutual_outbound_refused_total{reason="wrong_identity",destination="127.0.0.1:7102"} 1\n`,
    cart: `mutual_authorization_decisions_total{decision="deny",policy="",client_id="",port="7002"} 1\n`,
  });
  const byKey = Object.fromEntries(edges.map((edge) => [edgeKey(edge), edge]));
  assert.equal(byKey['web→cart:8080']!.reason, 'failed: wrong_identity');
  assert.equal(byKey['web→cart:8080']!.isSecured, false);
  assert.equal(byKey['unknown→cart:8080']!.reason, 'plaintext');
});

test('netns: a refused connection to a pod address is an edge to its service, not to the address', () => {
  const podRuntime = {
    ...runtime,
    isolation: 'netns',
    services: ['web', 'cart'].map((name, index) => ({
      ...service(name, 8080, 4143),
      pod: { netns: `mu0-${name}`, address: `198.18.0.${index + 2}` },
    })),
  } satisfies MeshRuntime;
  const edges = buildEdges(podRuntime, [
    {
      service: 'web',
      samples: parsePrometheusText(
        `mutual_outbound_connections_total{${tls('web', 'cart')},destination="198.18.0.3:8080"} 12
mutual_outbound_refused_total{reason="connect_failed",destination="198.18.0.3:8080"} 4
mutual_outbound_refused_total{reason="connect_failed",destination="198.18.0.3:9999"} 1
`,
      ),
    },
  ]);
  assert.deepEqual(
    edges.map((edge) => [edgeKey(edge), edge.connections, edge.failed]),
    [
      ['web→198.18.0.3:9999', 0, 1],
      ['web→cart:8080', 12, 4],
    ],
  );
});

test("the client's request counts make the row when the server's sidecar does not report", () => {
  const outbound = (ok: number, failed: number) =>
    `mutual_outbound_connections_total{${tls('bot', 'web')},destination="127.0.0.1:7101"} 2
mutual_outbound_http_requests_total{${tls('bot', 'web')},destination="127.0.0.1:7101",method="GET",status_code="200"} ${ok}
mutual_outbound_http_requests_total{${tls('bot', 'web')},destination="127.0.0.1:7101",method="GET",status_code="502"} ${failed}
`;
  // web's sidecar does not answer: only bot's counters are there, and they are the row's.
  const [alone] = edgesOf({ bot: outbound(138, 5) });
  assert.equal(edgeKey(alone!), 'bot→web:8080');
  assert.equal(alone!.requests, 143);
  assert.equal(alone!.serverErrors, 5);
  assert.equal(alone!.isSecured, true);
  // web's sidecar was restarted: its counters began again at 22, and they are the row's requests
  // (those bot's sidecar answered 502 while web's was down are in `failed`).
  const [both] = edgesOf({
    bot: outbound(160, 0),
    web: `mutual_inbound_connections_total{${tls('bot', 'web')},port="7001"} 1
mutual_inbound_http_requests_total{${tls('bot', 'web')},port="7001",method="GET",status_code="200"} 22
`,
  });
  assert.deepEqual([both!.requests, both!.serverErrors, both!.seenBy.length], [22, 0, 2]);
  // A plain HTTP call out of the mesh counts its requests too.
  const [outside] = edgesOf({
    bot: `mutual_outbound_http_requests_total{tls="no_identity",client_id="${id('bot')}",server_id="",no_tls_reason="not_meshed",destination="10.9.9.9:80",method="GET",status_code="200"} 7\n`,
  });
  assert.deepEqual(
    [edgeKey(outside!), outside!.requests, outside!.reason],
    ['bot→10.9.9.9:80', 7, 'not_meshed'],
  );
});

test('rows are in the order people count: s2 before s10', () => {
  const numbered = {
    ...runtime,
    services: ['s10', 's2', 's1'].map((name, index) => service(name, 7010 + index, 7110 + index)),
  } satisfies MeshRuntime;
  const edges = buildEdges(
    numbered,
    numbered.services.map((server, index) => ({
      service: server.name,
      samples: parsePrometheusText(
        `mutual_inbound_connections_total{${tls('web', server.name)},port="${7010 + index}"} 1\n`,
      ),
    })),
  );
  assert.deepEqual(
    edges.map((edge) => edge.destination),
    ['s1', 's2', 's10'],
  );
});

test('requests, 5xx and denials of a row count the same requests, also after a sidecar restarted', () => {
  // bot calls web, which its policy denies (403). web's sidecar was killed: bot's sidecar answered
  // one call 502 meanwhile (connect_failed), and web's counters began again. bot counted 7 × 403
  // and 1 × 502 since it started; web 4 requests, all denied, since it restarted. The row said
  // 8 requests, "87.5%" and 4 denied: 7 of 8 had been denied.
  const [edge] = edgesOf({
    bot: `mutual_outbound_connections_total{${tls('bot', 'web')},destination="127.0.0.1:7101"} 2
mutual_outbound_http_requests_total{${tls('bot', 'web')},destination="127.0.0.1:7101",method="POST",status_code="403"} 7
mutual_outbound_http_requests_total{${tls('bot', 'web')},destination="127.0.0.1:7101",method="POST",status_code="502"} 1
mutual_outbound_refused_total{reason="connect_failed",destination="127.0.0.1:7101"} 1
`,
    web: `mutual_inbound_connections_total{${tls('bot', 'web')},port="7001"} 1
mutual_inbound_http_requests_total{${tls('bot', 'web')},port="7001",method="POST",status_code="403"} 4
mutual_authorization_decisions_total{decision="deny",policy="shop/web",client_id="${id('bot')}",port="7001"} 4
`,
  });
  assert.deepEqual(
    {
      requests: edge!.requests,
      serverErrors: edge!.serverErrors,
      denied: edge!.denied,
      failed: edge!.failed,
    },
    { requests: 4, serverErrors: 0, denied: 4, failed: 1 },
  );
});

test('seenBy names the client first, whichever sidecar is read first', () => {
  const server = `mutual_inbound_connections_total{${tls('web', 'cart')},port="7002"} 1\n`;
  const client = `mutual_outbound_connections_total{${tls('web', 'cart')},destination="127.0.0.1:7102"} 1\n`;
  for (const proxies of [
    { cart: server, web: client },
    { web: client, cart: server },
  ]) {
    const [edge] = edgesOf(proxies);
    assert.deepEqual(edge!.seenBy, ['client', 'server']);
  }
});
