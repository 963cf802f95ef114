import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ap, policySet, ROOT, workload } from './test-fixtures.ts';
import type { AuthorizationDecision, RequestAttributes, WorkloadRef } from './types.ts';

const web = workload('demo', { app: 'web' });
const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
const ATTACKER = 'spiffe://cluster.local/ns/demo/sa/attacker';
const PROD = 'spiffe://cluster.local/ns/prod/sa/api';

interface Peer {
  principal?: string;
  ip?: string;
  port?: number;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string | string[]>;
}

interface Case {
  name: string;
  yaml: string;
  peer: Peer;
  /** Expected decision for an HTTP request and for a TCP connection with the same peer. */
  http: Expect;
  tcp?: Expect;
  workload?: WorkloadRef;
}
/** `allow`, `allow ns/name#rule`, `deny ns/name#rule` (a DENY match) or `no-allow ns/a,ns/b`. */
type Expect = string;

const allowWeb = ap(
  'allow-web',
  'demo',
  'action: ALLOW\nrules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/demo/sa/web"]',
);

const cases: Case[] = [
  {
    name: 'no policy allows everything',
    yaml: '',
    peer: { principal: ATTACKER },
    http: 'allow',
    tcp: 'allow',
  },
  {
    name: 'ALLOW for sa/web lets web in',
    yaml: allowWeb,
    peer: { principal: WEB },
    http: 'allow demo/allow-web#0',
    tcp: 'allow demo/allow-web#0',
  },
  {
    name: 'ALLOW for sa/web keeps sa/attacker out',
    yaml: allowWeb,
    peer: { principal: ATTACKER },
    http: 'no-allow demo/allow-web',
    tcp: 'no-allow demo/allow-web',
  },
  {
    name: 'principal arrives with or without spiffe://',
    yaml: allowWeb,
    peer: { principal: 'cluster.local/ns/demo/sa/web' },
    http: 'allow demo/allow-web#0',
  },
  {
    name: 'plaintext never matches principals',
    yaml: allowWeb,
    peer: {},
    http: 'no-allow demo/allow-web',
    tcp: 'no-allow demo/allow-web',
  },
  {
    name: 'spec: {} allows nothing',
    yaml: ap('deny-all', 'demo', '{}'),
    peer: { principal: WEB },
    http: 'no-allow demo/deny-all',
    tcp: 'no-allow demo/deny-all',
  },
  {
    name: 'rules: [{}] allows everything',
    yaml: ap('allow-all', 'demo', 'rules:\n- {}'),
    peer: {},
    http: 'allow demo/allow-all#0',
    tcp: 'allow demo/allow-all#0',
  },
  {
    name: 'DENY with rules: [{}] denies everything',
    yaml: ap('deny', 'demo', 'action: DENY\nrules:\n- {}'),
    peer: { principal: WEB },
    http: 'deny demo/deny#0',
    tcp: 'deny demo/deny#0',
  },
  {
    name: 'DENY beats ALLOW',
    yaml:
      allowWeb +
      ap('deny-web', 'demo', 'action: DENY\nrules:\n- from:\n  - source:\n      principals: ["*/sa/web"]'),
    peer: { principal: WEB },
    http: 'deny demo/deny-web#0',
  },
  {
    name: 'DENY that does not match leaves ALLOW to decide',
    yaml:
      allowWeb +
      ap('deny-prod', 'demo', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["prod"]'),
    peer: { principal: WEB },
    http: 'allow demo/allow-web#0',
  },
  {
    name: 'only DENY policies: unmatched requests are allowed',
    yaml: ap('deny-prod', 'demo', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["prod"]'),
    peer: { principal: WEB },
    http: 'allow',
  },
  {
    name: 'namespaces match the namespace of the principal',
    yaml: ap('deny-prod', 'demo', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["prod"]'),
    peer: { principal: PROD },
    http: 'deny demo/deny-prod#0',
  },
  {
    name: 'namespaces with a prefix',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      namespaces: ["pr*"]'),
    peer: { principal: PROD },
    http: 'allow demo/a#0',
  },
  {
    name: 'notNamespaces: another namespace matches',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      notNamespaces: ["prod"]'),
    peer: { principal: WEB },
    http: 'allow demo/a#0',
  },
  {
    name: 'notNamespaces: the excluded namespace does not',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      notNamespaces: ["prod"]'),
    peer: { principal: PROD },
    http: 'no-allow demo/a',
  },
  {
    name: 'Istio (ISTIO-SECURITY-2021-004): notNamespaces matches a plaintext peer',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      notNamespaces: ["prod"]'),
    peer: {},
    http: 'allow demo/a#0',
  },
  {
    name: 'Istio idiom: DENY notPrincipals ["*"] refuses plaintext',
    yaml: ap(
      'require-mtls',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notPrincipals: ["*"]',
    ),
    peer: {},
    http: 'deny demo/require-mtls#0',
    tcp: 'deny demo/require-mtls#0',
  },
  {
    name: '...and lets any authenticated peer through',
    yaml: ap(
      'require-mtls',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notPrincipals: ["*"]',
    ),
    peer: { principal: ATTACKER },
    http: 'allow',
  },
  {
    name: 'principals suffix match',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      principals: ["*/sa/web"]'),
    peer: { principal: WEB },
    http: 'allow demo/a#0',
  },
  {
    name: 'principals prefix match',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/prod/*"]'),
    peer: { principal: WEB },
    http: 'no-allow demo/a',
  },
  {
    name: 'principal "*" means any authenticated peer',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      principals: ["*"]'),
    peer: {},
    http: 'no-allow demo/a',
  },
  {
    name: 'principals and notPrincipals together are ANDed',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      principals: ["cluster.local/*"]\n      notPrincipals: ["*/sa/attacker"]',
    ),
    peer: { principal: ATTACKER },
    http: 'no-allow demo/a',
  },
  {
    name: 'several sources are ORed',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/x/sa/y"]\n  - source:\n      ipBlocks: ["10.1.0.0/16"]',
    ),
    peer: { ip: '10.1.2.3' },
    http: 'allow demo/a#0',
  },
  {
    name: 'ipBlocks CIDR miss',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      ipBlocks: ["10.1.0.0/16"]'),
    peer: { ip: '10.2.0.1' },
    http: 'no-allow demo/a',
  },
  {
    name: 'ipBlocks match IPv4-mapped addresses',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      ipBlocks: ["192.168.0.1"]'),
    peer: { ip: '::ffff:192.168.0.1' },
    http: 'allow demo/a#0',
  },
  {
    name: 'ipBlocks: an IPv4-mapped block is its IPv4 block, however written',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      ipBlocks: ["::FFFF:a00:0/104"]'),
    peer: { ip: '::ffff:10.1.2.3' },
    http: 'allow demo/a#0',
  },
  {
    // As Envoy's CidrRange: an address matches only blocks of its own family, and a client the
    // kernel reports as ::ffff:10.1.2.3 is IPv4. ::/0 is every IPv6 client, no IPv4 one.
    name: 'ipBlocks: an IPv6 block holds no IPv4 client, even one that covers ::ffff:0:0/96',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      ipBlocks: ["::/0"]'),
    peer: { ip: '::ffff:10.1.2.3' },
    http: 'no-allow demo/a',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'notIpBlocks: ::/0 beside an IPv4 block does not let every IPv4 client out of a DENY',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notIpBlocks: ["10.0.0.0/8", "::/0"]',
    ),
    peer: { ip: '198.18.0.7' },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'a DENY rule on IPv6 blocks does not catch an IPv4 client',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notIpBlocks: ["10.0.0.0/8", "::/0"]\n- from:\n  - source:\n      ipBlocks: ["::/0"]\n      notIpBlocks: ["fd00::/8"]',
    ),
    peer: { ip: '::ffff:10.1.2.3' },
    http: 'allow',
    tcp: 'allow',
  },
  {
    name: 'when source.ip: an IPv6 block holds no IPv4 client',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: source.ip\n    notValues: ["::/0", "10.0.0.0/8"]',
    ),
    peer: { ip: '::ffff:198.18.0.7' },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'notIpBlocks',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notIpBlocks: ["127.0.0.0/8", "::1"]',
    ),
    peer: { ip: '198.18.0.7' },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'to ports: TCP-level, matches both',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      ports: ["8080"]'),
    peer: { port: 8080 },
    http: 'allow demo/a#0',
    tcp: 'allow demo/a#0',
  },
  {
    name: 'to notPorts (numbers accepted too)',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      notPorts: [8080]'),
    peer: { port: 8080 },
    http: 'no-allow demo/a',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'methods and paths',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- to:\n  - operation:\n      methods: ["GET", "HEAD"]\n      paths: ["/api/*", "*.png", "/exact"]',
    ),
    peer: { method: 'GET', path: '/api/users?id=1' },
    http: 'allow demo/a#0',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'paths suffix',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["*.png"]'),
    peer: { path: '/img/logo.png' },
    http: 'allow demo/a#0',
  },
  {
    name: 'method mismatch',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      methods: ["POST"]'),
    peer: { method: 'GET' },
    http: 'no-allow demo/a',
  },
  {
    name: 'notMethods and notPaths',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- to:\n  - operation:\n      notMethods: ["DELETE"]\n      notPaths: ["/admin*"]',
    ),
    peer: { method: 'GET', path: '/admin/users' },
    http: 'no-allow demo/a',
  },
  {
    name: 'hosts are case-insensitive',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      hosts: ["*.Example.com"]'),
    peer: { host: 'API.example.COM' },
    http: 'allow demo/a#0',
  },
  // Istio matches `hosts` against the Host as sent: "exact match authorization policies only
  // match the exact string given" (istio.io security best practices, Writing Host Match Policies).
  {
    name: 'ALLOW hosts: a Host with a port is not the host without one, as in Istio',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      hosts: ["*.Example.com", "web.demo"]'),
    peer: { host: 'API.example.COM:8443' },
    http: 'no-allow demo/a',
  },
  {
    name: 'ALLOW hosts: istio.io\'s ["example.com", "example.com:*"] admits the host with any port',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      hosts: ["example.com", "example.com:*"]'),
    peer: { host: 'example.com:8080' },
    http: 'allow demo/a#0',
  },
  {
    name: 'ALLOW hosts: a trailing dot is not the host as written, as in Istio',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      hosts: ["admin.internal"]'),
    peer: { host: 'admin.internal.' },
    http: 'no-allow demo/a',
  },
  {
    // Stricter than Istio, which lets internal.local:80 in: the app reads it as internal.local.
    name: 'ALLOW notHosts keeps the host out with a port or a trailing dot too',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      notHosts: ["internal.local"]'),
    peer: { host: 'Internal.Local.:80' },
    http: 'no-allow demo/a',
  },
  {
    // Istio's DENY-with-negative-match: anything but the exact string is denied.
    name: 'DENY notHosts: a Host with a port is not the host as written, so it is denied, as in Istio',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      notHosts: ["public.example.com"]',
    ),
    peer: { host: 'public.example.com:8080' },
    http: 'deny demo/d#0',
  },
  {
    name: 'DENY notHosts: the host as written, in any case, is not denied',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      notHosts: ["public.example.com"]',
    ),
    peer: { host: 'Public.Example.com' },
    http: 'allow',
  },
  {
    name: 'notHosts',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      notHosts: ["internal.local"]'),
    peer: { host: 'internal.local' },
    http: 'no-allow demo/a',
  },
  {
    name: 'HTTP-only fields on TCP: an ALLOW rule with them never matches',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      methods: ["GET"]\n      ports: ["8080"]'),
    peer: { method: 'GET', port: 8080 },
    http: 'allow demo/a#0',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'HTTP-only fields on TCP: a DENY rule ignores them (fail safe)',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["POST"]\n      ports: ["8080"]',
    ),
    peer: { method: 'GET', port: 8080 },
    http: 'allow',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'DENY with HTTP fields on TCP still respects its TCP fields',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["POST"]\n      ports: ["8080"]',
    ),
    peer: { method: 'POST', port: 9090 },
    http: 'allow',
    tcp: 'allow',
  },
  {
    name: 'a later rule of an ALLOW policy may match',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- to:\n  - operation:\n      paths: ["/a"]\n- from:\n  - source:\n      principals: ["cluster.local/ns/demo/sa/web"]',
    ),
    peer: { principal: WEB, path: '/b' },
    http: 'allow demo/a#1',
  },
  {
    name: 'from and to in one rule are ANDed',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/demo/sa/web"]\n  to:\n  - operation:\n      methods: ["GET"]',
    ),
    peer: { principal: WEB, method: 'POST' },
    http: 'no-allow demo/a',
  },
  {
    name: 'when source.principal',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- when:\n  - key: source.principal\n    values: ["cluster.local/ns/demo/sa/web"]',
    ),
    peer: { principal: WEB },
    http: 'allow demo/a#0',
    tcp: 'allow demo/a#0',
  },
  {
    name: 'when source.namespace notValues',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: source.namespace\n    notValues: ["demo"]'),
    peer: { principal: WEB },
    http: 'no-allow demo/a',
  },
  {
    name: 'when source.ip',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: source.ip\n    values: ["10.0.0.0/8"]'),
    peer: { ip: '10.9.9.9' },
    http: 'allow demo/a#0',
    tcp: 'allow demo/a#0',
  },
  {
    name: 'when destination.port',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: destination.port\n    values: ["9090"]'),
    peer: { port: 8080 },
    http: 'no-allow demo/a',
  },
  {
    name: 'when request.headers',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: request.headers[X-Tenant]\n    values: ["acme-*"]'),
    peer: { headers: { 'x-tenant': 'acme-eu' } },
    http: 'allow demo/a#0',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'all when conditions must hold',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- when:\n  - key: request.headers[x-tenant]\n    values: ["acme"]\n  - key: source.ip\n    values: ["10.0.0.1"]',
    ),
    peer: { headers: { 'x-tenant': 'acme' }, ip: '10.0.0.2' },
    http: 'no-allow demo/a',
  },
  {
    name: 'DENY with a header condition on TCP drops the condition',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-debug]\n    values: ["1"]',
    ),
    peer: {},
    http: 'allow',
    tcp: 'deny demo/d#0',
  },
  {
    // Istio's header `*` is Envoy's present_match: a header sent with no value is there.
    name: 'DENY header "*" matches a header sent empty',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-debug]\n    values: ["*"]',
    ),
    peer: { headers: { 'x-debug': '' } },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'DENY header "*" lets a request without the header through',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-debug]\n    values: ["*"]',
    ),
    peer: {},
    http: 'allow',
  },
  // Istio (istio.io, Authorization Policy Normalization, "Duplicate headers"): a header sent twice
  // is merged with "," (foo,bar) and matched as a simple string. An app may read one element of
  // it, so a DENY's values also match any `,`-separated element (stricter than Istio).
  {
    name: 'DENY header values matches one element of a header sent twice',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-user]\n    values: ["evil"]',
    ),
    peer: { headers: { 'x-user': ['good', 'evil'] } },
    http: 'deny demo/d#0',
  },
  {
    name: 'DENY header values matches one element of a comma-separated value, first or middle',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-user]\n    values: ["evil"]',
    ),
    peer: { headers: { 'x-user': 'evil,good,x' } },
    http: 'deny demo/d#0',
  },
  {
    name: 'DENY header prefix and suffix match an element',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-user]\n    values: ["adm*", "*-root"]',
    ),
    peer: { headers: { 'x-user': ['guest', 'admin'] } },
    http: 'deny demo/d#0',
  },
  {
    name: 'DENY header suffix matches an element that is not the last',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-user]\n    values: ["*-root"]',
    ),
    peer: { headers: { 'x-user': 'me-root,guest' } },
    http: 'deny demo/d#0',
  },
  {
    // As Envoy's regex: the element after ", " starts with a space, so " evil" is not "evil".
    name: 'header elements are split at "," only: " evil" is not "evil"',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[x-user]\n    values: ["evil"]',
    ),
    peer: { headers: { 'x-user': 'good, evil' } },
    http: 'allow',
  },
  {
    name: 'ALLOW header values match the merged value as one string, as Istio does',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- when:\n  - key: request.headers[accept]\n    values: ["application/json"]',
    ),
    peer: { headers: { accept: 'text/html,application/json' } },
    http: 'no-allow demo/a',
  },
  {
    name: 'ALLOW header values: x-header foo + x-header bar is the string "foo,bar", as in Istio',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- when:\n  - key: request.headers[x-header]\n    values: ["foo,bar"]\n  - key: request.headers[x-header]\n    values: ["*bar"]',
    ),
    peer: { headers: { 'x-header': ['foo', 'bar'] } },
    http: 'allow demo/a#0',
  },
  // Istio's request.experimental.inline.headers[...]: any one `,`-separated element may match
  // (HeaderMatcherWithRegex ^v$|^v,.*|.*,v,.*|.*,v$), in ALLOW rules too.
  {
    name: 'ALLOW request.experimental.inline.headers admits a request when one element matches',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- when:\n  - key: request.experimental.inline.headers[Accept]\n    values: ["application/json"]',
    ),
    peer: { headers: { accept: ['text/html', 'application/json'] } },
    http: 'allow demo/a#0',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'ALLOW request.experimental.inline.headers notValues keeps out a request with one element in it',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- when:\n  - key: request.experimental.inline.headers[x-role]\n    notValues: ["guest"]',
    ),
    peer: { headers: { 'x-role': 'admin,guest' } },
    http: 'no-allow demo/a',
  },
  {
    name: 'DENY request.experimental.inline.headers matches an element; on TCP it is dropped',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.experimental.inline.headers[x-role]\n    values: ["adm*"]',
    ),
    peer: { headers: { 'x-role': 'user,admin' } },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  // Envoy's header map holds the pseudo-headers; Istio's own testdata uses request.headers[:method].
  {
    name: 'DENY request.headers[:method] matches the method (HTTP/1 has no such header line)',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[:method]\n    values: ["DELETE"]',
    ),
    peer: { method: 'DELETE' },
    http: 'deny demo/d#0',
  },
  {
    name: 'DENY request.headers[:authority] matches the Host as sent',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[:authority]\n    values: ["admin.*"]',
    ),
    peer: { host: 'admin.internal:8080' },
    http: 'deny demo/d#0',
  },
  {
    // The path as matched and forwarded (normalised, with its query), not an HTTP/2 client's raw :path.
    name: 'DENY request.headers[:path] matches the normalised path with its query',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- when:\n  - key: request.headers[:path]\n    values: ["/admin*"]',
    ),
    peer: { path: '/admin?x=1', headers: { ':path': '/public/../admin?x=1' } },
    http: 'deny demo/d#0',
  },
  // Istio reads a "*" that is not alone at one end literally (StringMatcherWithPrefix: a leading
  // "*" first, then a trailing one), and namespaces as the glob .*/ns/<v, * as .*>/.*.
  {
    name: 'paths: a "*" in the middle is literal, as in Istio',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["/api/*/users"]'),
    peer: { path: '/api/v1/users' },
    http: 'no-allow demo/a',
  },
  {
    name: 'paths: "/api/*/users" matches the path with a literal "*"',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["/api/*/users"]'),
    peer: { path: '/api/*/users' },
    http: 'allow demo/a#0',
  },
  {
    name: 'principals: "*mid*" is a suffix match of "mid*", as in Istio',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      principals: ["*/sa/web*"]'),
    peer: { principal: 'spiffe://cluster.local/ns/demo/sa/web*' },
    http: 'allow demo/a#0',
  },
  {
    name: 'principals: "*/sa/web*" does not match sa/web2 (the trailing "*" is literal)',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      principals: ["*/sa/web*"]'),
    peer: { principal: 'spiffe://cluster.local/ns/demo/sa/web2' },
    http: 'no-allow demo/a',
  },
  {
    name: 'namespaces: "team-*-prod" is a glob, as Istio\'s regex .*/ns/team-.*-prod/.* is',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      namespaces: ["team-*-prod"]'),
    peer: { principal: 'spiffe://cluster.local/ns/team-a-prod/sa/api' },
    http: 'allow demo/a#0',
    tcp: 'allow demo/a#0',
  },
  {
    name: 'namespaces: "team-*-prod" does not match team-a-dev',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      namespaces: ["team-*-prod"]'),
    peer: { principal: 'spiffe://cluster.local/ns/team-a-dev/sa/api' },
    http: 'no-allow demo/a',
  },
  {
    name: 'ALLOW header notValues keeps out a request with one element in it',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: request.headers[x-token]\n    notValues: ["guest"]'),
    peer: { headers: { 'x-token': ['admin', 'guest'] } },
    http: 'no-allow demo/a',
  },
  {
    // As Istio: the merged admin,guest is not the string admin.
    name: "DENY header notValues (istio.io's deny-method-get) denies admin sent beside guest",
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["GET"]\n  when:\n  - key: request.headers[x-token]\n    notValues: ["admin"]',
    ),
    peer: { headers: { 'x-token': ['admin', 'guest'] } },
    http: 'deny demo/d#0',
  },
  {
    name: "DENY header notValues (istio.io's deny-method-get) lets x-token: admin through",
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["GET"]\n  when:\n  - key: request.headers[x-token]\n    notValues: ["admin"]',
    ),
    peer: { headers: { 'x-token': 'admin' } },
    http: 'allow',
  },
  {
    name: 'ALLOW header notValues "*" keeps out a header sent empty',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: request.headers[x-debug]\n    notValues: ["*"]'),
    peer: { headers: { 'x-debug': '' } },
    http: 'no-allow demo/a',
    tcp: 'no-allow demo/a',
  },
  {
    // Istio: `cluster.local` in a principal is the mesh's own trust domain (trustdomain/bundle.go).
    name: 'DENY of cluster.local/ns/evil/sa/bad holds in a mesh whose trust domain is example.org',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/evil/sa/bad"]',
    ),
    workload: { namespace: 'demo', labels: { app: 'web' }, trustDomain: 'example.org' },
    peer: { principal: 'spiffe://example.org/ns/evil/sa/bad' },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'source.principal condition and notPrincipals name the local trust domain too',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      notPrincipals: ["cluster.local/ns/evil/sa/bad"]\n  when:\n  - key: source.principal\n    values: ["cluster.local/ns/demo/sa/web"]',
    ),
    workload: { namespace: 'demo', labels: { app: 'web' }, trustDomain: 'example.org' },
    peer: { principal: 'spiffe://example.org/ns/demo/sa/web' },
    http: 'allow demo/a#0',
    tcp: 'allow demo/a#0',
  },
  {
    name: 'in example.org, cluster.local/... no longer matches a peer of the trust domain cluster.local',
    yaml: allowWeb,
    workload: { namespace: 'demo', labels: { app: 'web' }, trustDomain: 'example.org' },
    peer: { principal: WEB },
    http: 'no-allow demo/allow-web',
    tcp: 'no-allow demo/allow-web',
  },
  {
    name: 'as in Istio, only five-part principals are rewritten: cluster.local/ns/demo/* stays literal',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/demo/*"]'),
    workload: { namespace: 'demo', labels: { app: 'web' }, trustDomain: 'example.org' },
    peer: { principal: 'spiffe://example.org/ns/demo/sa/web' },
    http: 'no-allow demo/a',
  },
  {
    name: "namespaces match as Istio's regex over the principal: /ns/prod/ deeper in the path counts",
    yaml: ap('d', 'demo', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["prod"]'),
    peer: { principal: 'spiffe://cluster.local/ns/dev/sa/x/ns/prod/y' },
    http: 'deny demo/d#0',
    tcp: 'deny demo/d#0',
  },
  {
    name: 'namespaces: a principal ending in /ns/prod has no namespace segment Istio would match',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      namespaces: ["prod"]'),
    peer: { principal: 'spiffe://cluster.local/ns/prod' },
    http: 'no-allow demo/a',
    tcp: 'no-allow demo/a',
  },
  {
    name: 'AUDIT never decides',
    yaml: ap('audit', 'demo', 'action: AUDIT\nrules:\n- {}'),
    peer: { principal: ATTACKER },
    http: 'allow [audit demo/audit]',
    tcp: 'allow [audit demo/audit]',
  },
  {
    name: 'AUDIT is recorded beside a denial',
    yaml: ap('audit', 'demo', 'action: AUDIT\nrules:\n- {}') + ap('deny-all', 'demo', '{}'),
    peer: { principal: ATTACKER },
    http: 'no-allow demo/deny-all [audit demo/audit]',
  },
  {
    name: 'several ALLOW policies: the denial names them all',
    yaml: allowWeb + ap('allow-prod', 'demo', 'rules:\n- from:\n  - source:\n      namespaces: ["prod"]'),
    peer: { principal: ATTACKER },
    http: 'no-allow demo/allow-prod,demo/allow-web',
  },
  {
    name: 'a selector narrows a policy to its workloads',
    yaml: ap('deny-api', 'demo', 'selector:\n  matchLabels: {app: api}\naction: DENY\nrules:\n- {}'),
    peer: { principal: WEB },
    http: 'allow',
  },
  {
    name: 'a policy in another namespace does not apply',
    yaml: ap('deny', 'other', 'action: DENY\nrules:\n- {}'),
    peer: { principal: WEB },
    http: 'allow',
  },
  {
    name: 'root-namespace policies apply mesh-wide',
    yaml: ap('deny', ROOT, 'action: DENY\nrules:\n- from:\n  - source:\n      principals: ["*/sa/attacker"]'),
    peer: { principal: ATTACKER },
    http: `deny ${ROOT}/deny#0`,
  },
  {
    name: 'root-namespace policies with a selector apply to matching workloads everywhere',
    yaml: ap('deny', ROOT, 'selector:\n  matchLabels: {app: web}\naction: DENY\nrules:\n- {}'),
    peer: { principal: WEB },
    http: `deny ${ROOT}/deny#0`,
  },
  {
    name: 'paths: a path with an encoded slash must be allowed as an app that decodes it reads it',
    yaml: ap('deny-admin', 'demo', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin/*"]'),
    peer: { principal: WEB, path: '/admin%2Fusers' },
    http: 'deny demo/deny-admin#0',
  },
  {
    name: 'paths: ;parameters are dropped in the second reading (Tomcat, Spring)',
    yaml: ap('allow-public', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["/public/*"]'),
    peer: { principal: WEB, path: '/public/..;/admin?x=1' },
    http: 'no-allow demo/allow-public',
  },
  {
    name: 'paths: an encoded slash both readings allow is allowed',
    yaml: ap('allow-files', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["/files/*"]'),
    peer: { principal: WEB, path: '/files/a%2Fb' },
    http: 'allow demo/allow-files#0',
  },
  {
    name: 'paths: match case-sensitively, as Istio does',
    yaml: ap('deny-admin', 'demo', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin/*"]'),
    peer: { principal: WEB, path: '/ADMIN/x' },
    http: 'allow',
  },
  {
    name: 'hosts: a trailing dot names the same host',
    yaml: ap(
      'deny-admin',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      hosts: ["admin.internal"]',
    ),
    peer: { principal: WEB, host: 'Admin.Internal.' },
    http: 'deny demo/deny-admin#0',
  },
  {
    name: 'hosts: a trailing dot before the port names the same host',
    yaml: ap(
      'deny-admin',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      hosts: ["admin.internal"]',
    ),
    peer: { principal: WEB, host: 'admin.internal.:8080' },
    http: 'deny demo/deny-admin#0',
  },
  {
    // Istio compares the Host as sent: api.internal.:8080 is not api.internal:8080.
    name: 'DENY notHosts: a trailing dot is not the host as written, so it is denied, as in Istio',
    yaml: ap(
      'only-api',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      notHosts: ["api.internal:8080"]',
    ),
    peer: { principal: WEB, host: 'api.internal.:8080' },
    http: 'deny demo/only-api#0',
  },
  {
    name: 'serviceAccounts demo/web lets web in over HTTP and TCP, in any trust domain, as Istio does',
    yaml: ap('sa', 'demo', 'rules:\n- from:\n  - source:\n      serviceAccounts: ["demo/web"]'),
    peer: { principal: 'spiffe://example.org/ns/demo/sa/web' },
    http: 'allow demo/sa#0',
    tcp: 'allow demo/sa#0',
  },
  {
    name: 'serviceAccounts demo/web keeps demo/web2, prod/web and plaintext out',
    yaml: ap('sa', 'demo', 'rules:\n- from:\n  - source:\n      serviceAccounts: ["demo/web"]'),
    peer: { principal: 'spiffe://cluster.local/ns/demo/sa/web2' },
    http: 'no-allow demo/sa',
    tcp: 'no-allow demo/sa',
  },
  {
    name: "serviceAccounts without a namespace name one in the policy namespace, not the peer's",
    yaml: ap('sa', 'prod', 'rules:\n- from:\n  - source:\n      serviceAccounts: ["web"]'),
    peer: { principal: WEB },
    http: 'no-allow prod/sa',
    workload: workload('prod'),
  },
  {
    name: 'serviceAccounts without a namespace: prod/api for a policy in prod',
    yaml: ap('sa', 'prod', 'rules:\n- from:\n  - source:\n      serviceAccounts: ["api"]'),
    peer: { principal: PROD },
    http: 'allow prod/sa#0',
    workload: workload('prod'),
  },
  {
    name: 'serviceAccounts: a plaintext peer is in no service account',
    yaml: ap('sa', 'demo', 'rules:\n- from:\n  - source:\n      serviceAccounts: ["demo/web"]'),
    peer: {},
    http: 'no-allow demo/sa',
    tcp: 'no-allow demo/sa',
  },
  {
    name: 'DENY notServiceAccounts denies everyone else, plaintext included',
    yaml: ap(
      'only-web',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notServiceAccounts: ["demo/web"]',
    ),
    peer: {},
    http: 'deny demo/only-web#0',
    tcp: 'deny demo/only-web#0',
  },
  {
    name: 'DENY notServiceAccounts lets the named one through',
    yaml: ap(
      'only-web',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      notServiceAccounts: ["web"]',
    ),
    peer: { principal: WEB },
    http: 'allow',
    tcp: 'allow',
  },
  {
    name: 'when source.serviceAccount matches as serviceAccounts does',
    yaml: ap(
      'sa',
      'demo',
      'rules:\n- when:\n  - key: source.serviceAccount\n    values: ["web"]\n    notValues: ["prod/api"]',
    ),
    peer: { principal: WEB },
    http: 'allow demo/sa#0',
    tcp: 'allow demo/sa#0',
  },
  {
    name: 'when source.serviceAccount keeps another service account out',
    yaml: ap('sa', 'demo', 'rules:\n- when:\n  - key: source.serviceAccount\n    values: ["web"]'),
    peer: { principal: ATTACKER },
    http: 'no-allow demo/sa',
  },
  {
    name: 'policy order is by id: the first DENY in that order is named',
    yaml:
      ap('z-deny', 'demo', 'action: DENY\nrules:\n- {}') + ap('a-deny', 'demo', 'action: DENY\nrules:\n- {}'),
    peer: { principal: WEB },
    http: 'deny demo/a-deny#0',
  },
];

function describe(decision: AuthorizationDecision): string {
  const audit = decision.audited?.length ? ` [audit ${decision.audited.join(',')}]` : '';
  if (decision.allowed) {
    return `${decision.policy === undefined ? 'allow' : `allow ${decision.policy}#${decision.rule}`}${audit}`;
  }
  if (decision.reason === 'denied-by-policy') return `deny ${decision.policy}#${decision.rule}${audit}`;
  return `no-allow ${decision.policy}${audit}`;
}

function request(peer: Peer): RequestAttributes {
  return {
    ...(peer.principal === undefined ? {} : { sourcePrincipal: peer.principal }),
    sourceIp: peer.ip ?? '10.0.0.1',
    destinationPort: peer.port ?? 8080,
    method: peer.method ?? 'GET',
    path: peer.path ?? '/',
    host: peer.host ?? 'web.demo',
    headers: peer.headers ?? {},
  };
}

for (const c of cases) {
  test(`authorize: ${c.name}`, () => {
    const policy = policySet(c.yaml).forWorkload(c.workload ?? web);
    assert.equal(describe(policy.authorizeRequest(request(c.peer))), c.http, 'HTTP request');
    if (c.tcp !== undefined) {
      const { method: _m, path: _p, host: _h, headers: _x, ...connection } = request(c.peer);
      assert.equal(describe(policy.authorizeConnection(connection)), c.tcp, 'TCP connection');
    }
  });
}

test('authorize: the principal index does not hide unkeyed rules that come first', () => {
  const yaml =
    ap('a-any', 'demo', 'action: DENY\nrules:\n- to:\n  - operation:\n      ports: ["8080"]') +
    ap(
      'b-web',
      'demo',
      'action: DENY\nrules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/demo/sa/web"]',
    );
  const policy = policySet(yaml).forWorkload(web);
  assert.equal(
    describe(policy.authorizeRequest(request({ principal: WEB, port: 8080 }))),
    'deny demo/a-any#0',
  );
  assert.equal(
    describe(policy.authorizeRequest(request({ principal: WEB, port: 9090 }))),
    'deny demo/b-web#0',
  );
  assert.equal(describe(policy.authorizeRequest(request({ principal: ATTACKER, port: 9090 }))), 'allow');
});

test('authorize: forWorkload lists the policies that apply, by action', () => {
  const policy = policySet(allowWeb + ap('d', ROOT, 'action: DENY\nrules:\n- {}')).forWorkload(web);
  assert.deepEqual(policy.authorizationPolicies, {
    ALLOW: ['demo/allow-web'],
    DENY: [`${ROOT}/d`],
    AUDIT: [],
  });
});
