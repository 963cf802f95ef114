import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throwsCode } from '../testing/expect-error.ts';
import { meshFileFields, parseMeshConfig } from './mesh-config.ts';
import { identityPlan } from './plan.ts';
import { meshPaths } from './runtime.ts';

const FILE = '/demo/mesh.yaml';

const DEMO = `
trustDomain: demo.local
policyDir: policies
services:
  - name: web
    namespace: emojivoto
    labels: { app: web, tier: front }
    command: [node, web.mjs]
    ports: [8080]
    upstreams: [emoji, "voting:8080"]
  - name: emoji
    namespace: emojivoto
    command: node emoji.mjs
    ports: [{ port: 8080, protocol: http }, { port: 9000, protocol: tcp }]
    opaquePorts: [9000]
  - name: voting
    namespace: emojivoto
    serviceAccount: voting-sa
    command: [node, voting.mjs]
    ports: [8080]
`;

test('a valid mesh file resolves defaults, paths and upstreams', () => {
  const config = parseMeshConfig(DEMO, FILE);
  assert.equal(config.trustDomain, 'demo.local');
  assert.equal(config.policyDir, '/demo/policies');
  assert.equal(config.mode, 'STRICT');
  const [web, emoji, voting] = config.services;
  assert.deepEqual(web!.command, ['node', 'web.mjs']);
  assert.equal(web!.cwd, '/demo');
  assert.equal(web!.serviceAccount, 'web');
  assert.deepEqual(web!.labels, { app: 'web', tier: 'front' });
  assert.deepEqual(web!.upstreams, [
    { service: 'emoji', port: 8080, env: 'EMOJI' },
    { service: 'voting', port: 8080, env: 'VOTING_8080' },
  ]);
  assert.deepEqual(emoji!.command, ['/bin/sh', '-c', 'node emoji.mjs']);
  assert.deepEqual(emoji!.ports, [
    { port: 8080, protocol: 'http' },
    { port: 9000, protocol: 'tcp' },
  ]);
  assert.deepEqual(emoji!.labels, { app: 'emoji' });
  assert.deepEqual(emoji!.opaquePorts, [9000]);
  assert.equal(voting!.serviceAccount, 'voting-sa');
  assert.equal(voting!.namespace, 'emojivoto');
});

test('mesh file problems name file:line:column, the field and the fix', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not yaml', 'services: [a\n', /mesh\.yaml:\d+:\d+: not valid YAML/],
    ['no services', 'trustDomain: demo.local\n', /:1:1: services: is required/],
    [
      'typo in a field',
      'services:\n  - name: web\n    command: [x]\n    upstream: [emoji]\n',
      /:4:5: services\[0\]\.upstream: unknown field "upstream" \(did you mean "upstreams"\?\)/,
    ],
    [
      'bad port',
      'services:\n  - name: web\n    command: [x]\n    ports: [70000]\n',
      /:4:13: services\[0\]\.ports\[0\]: must be between 1 and 65535/,
    ],
    [
      'bad name',
      'services:\n  - name: Web_1\n    command: [x]\n',
      /:2:11: services\[0\]\.name: must be a DNS label/,
    ],
    [
      'unknown upstream',
      'services:\n  - name: web\n    command: [x]\n    upstreams: [emoij]\n  - name: emoji\n    command: [x]\n    ports: [1]\n',
      /:4:17: services\[0\]\.upstreams\[0\]: no service named "emoij" \(did you mean "emoji"\?\)/,
    ],
    [
      'upstream port missing',
      'services:\n  - name: web\n    command: [x]\n    upstreams: ["emoji:9"]\n  - name: emoji\n    command: [x]\n    ports: [1]\n',
      /has no port 9; its ports are 1/,
    ],
    [
      'duplicate service',
      'services:\n  - name: web\n    command: [x]\n  - name: web\n    command: [y]\n',
      /:4:11: services\[1\]\.name: service "web" is declared twice/,
    ],
    [
      'a control-plane name',
      'services:\n  - name: destination\n    command: [x]\n',
      /:2:11: services\[0\]\.name: "destination" is the name of the mesh's own destination service/,
    ],
    [
      'bad trust domain',
      'trustDomain: Demo.Local\nservices:\n  - name: web\n    command: [x]\n',
      /:1:14: trustDomain: /,
    ],
    [
      'namespace not a path segment',
      'services:\n  - name: web\n    namespace: "a/b"\n    command: [x]\n',
      /services\[0\]\.namespace: must be letters, digits/,
    ],
    ['empty command', 'services:\n  - name: web\n    command: []\n', /services\[0\]\.command/],
  ];
  for (const [name, text, message] of cases) {
    throwsCode(() => parseMeshConfig(text, FILE), 'MUTUAL_MESH_CONFIG_INVALID', name, message);
  }
});

test('every problem in a file is reported at once', () => {
  throwsCode(
    () => parseMeshConfig('services:\n  - name: web\n    colour: red\n  - command: [x]\n', FILE),
    'MUTUAL_MESH_CONFIG_INVALID',
    'two problems',
    /3 problems:[\s\S]*:2:5: services\[0\]\.command: is required[\s\S]*:3:5: services\[0\]\.colour[\s\S]*services\[1\]\.name: is required/,
  );
});

test('a wrong upstream or port shape says how to write it', () => {
  throwsCode(
    () => parseMeshConfig('services:\n  - name: web\n    command: [x]\n    upstreams: ["Emoji!"]\n', FILE),
    'MUTUAL_MESH_CONFIG_INVALID',
    'upstream',
    /upstreams\[0\]: write SERVICE or SERVICE:PORT/,
  );
  throwsCode(
    () => parseMeshConfig('services:\n  - name: web\n    command: [x]\n    ports: ["http"]\n', FILE),
    'MUTUAL_MESH_CONFIG_INVALID',
    'port',
    /ports\[0\]: write a port number/,
  );
});

test('two unknown fields in one service are both named, and wrong types say how to write them', () => {
  const text = [
    'services:',
    '  - name: web',
    '    comand: [x]',
    '    ports: 8080',
    '    upstream: [emoji]',
    '    env: { DEBUG: 1, VERBOSE: true }',
    '    labels: [app]',
    '',
  ].join('\n');
  const cases: Array<[string, RegExp]> = [
    ['first typo', /:3:5: services\[0\]\.comand: unknown field "comand" \(did you mean "command"\?\)/],
    ['second typo', /:5:5: services\[0\]\.upstream: unknown field "upstream" \(did you mean "upstreams"\?\)/],
    ['a number for a list', /:4:12: services\[0\]\.ports: must be a list, e.g. \[8080\]/],
    [
      'a number for text',
      /services\[0\]\.env\.DEBUG: must be text: YAML reads 1 as a number, so quote it: "1"/,
    ],
    ['a boolean for text', /services\[0\]\.env\.VERBOSE: must be text: .* quote it: "true"/],
    ['a list for a map', /services\[0\]\.labels: must be a map of name: value, e.g. \{ app: web/],
  ];
  for (const [name, message] of cases)
    throwsCode(() => parseMeshConfig(text, FILE), 'MUTUAL_MESH_CONFIG_INVALID', name, message);
  throwsCode(
    () => parseMeshConfig(text, FILE),
    'MUTUAL_MESH_CONFIG_INVALID',
    'no zod wording',
    /^(?![\s\S]*Invalid input)/,
  );
});

test('schema errors and reference errors come out together, in file order, none guessed from a broken part', () => {
  const text = [
    'services:',
    '  - name: web',
    '    comand: [x]',
    '    upstreams: [emoij, "api:9090"]',
    '  - name: api',
    '    command: [x]',
    '    ports: 8080',
    '  - name: web',
    '    command: [x]',
    '',
  ].join('\n');
  throwsCode(
    () => parseMeshConfig(text, FILE),
    'MUTUAL_MESH_CONFIG_INVALID',
    'both kinds',
    new RegExp(
      [
        'has 5 problems:',
        ':2:5: services\\[0\\]\\.command: is required',
        ':3:5: services\\[0\\]\\.comand: unknown field',
        ':4:17: services\\[0\\]\\.upstreams\\[0\\]: no service named "emoij"',
        ':7:12: services\\[1\\]\\.ports: must be a list',
        ':8:11: services\\[2\\]\\.name: service "web" is declared twice$',
      ].join('.*\\n.*'),
    ),
  );
});

test('docs/mesh.md describes every field a mesh file may have', async () => {
  const { readFile } = await import('node:fs/promises');
  const doc = await readFile(new URL('../../../docs/mesh.md', import.meta.url), 'utf8');
  const fields = Object.values(meshFileFields()).flat();
  const missing = fields.filter((field) => !new RegExp(`(^|[\\s{,])${field}:\\s`, 'm').test(doc));
  assert.deepEqual(missing, [], `fields missing from docs/mesh.md's example: ${missing.join(', ')}`);
  assert.match(doc, /\$PORT/);
});

test('certificateLifetime: 24h unless set, given to the identity service, and refused outside 30s to 90d at its line', () => {
  assert.equal(parseMeshConfig(DEMO, FILE).certificateLifetime, '24h');
  const short = parseMeshConfig(`certificateLifetime: 2m\n${DEMO}`, FILE);
  assert.equal(short.certificateLifetime, '2m');
  const plan = identityPlan({
    paths: meshPaths('/state'),
    mutual: ['node', 'mutual.js'],
    host: '127.0.0.1',
    apiPort: 1,
    adminPort: 2,
    certificateLifetime: short.certificateLifetime,
  });
  assert.deepEqual(plan.argv.slice(plan.argv.indexOf('--lifetime')), ['--lifetime', '2m']);
  for (const [value, message] of [
    ['5s', /mesh\.yaml:1:22: certificateLifetime: certificateLifetime "5s" is too short: give 30s to 90d/],
    ['1y', /mesh\.yaml:1:22: certificateLifetime: .*"1y"/],
    ['400d', /"400d" is longer than the maximum of 90d: give 30s to 90d/],
  ] as const) {
    throwsCode(
      () => parseMeshConfig(`certificateLifetime: ${value}\n${DEMO}`, FILE),
      'MUTUAL_MESH_CONFIG_INVALID',
      value,
      message,
    );
  }
});

test("liveness: the kubelet's defaults unless set, and each field refused at its line with what to write", () => {
  assert.deepEqual(parseMeshConfig(DEMO, FILE).liveness, {
    periodSeconds: 10,
    failureThreshold: 3,
    timeoutSeconds: 1,
  });
  assert.deepEqual(parseMeshConfig(`liveness: { periodSeconds: 2 }\n${DEMO}`, FILE).liveness, {
    periodSeconds: 2,
    failureThreshold: 3,
    timeoutSeconds: 1,
  });
  for (const [value, message] of [
    ['{ periodSeconds: 0 }', /mesh\.yaml:1:28: liveness\.periodSeconds: must be at least 1 \(second\)/],
    ['{ periodSeconds: 1.5 }', /liveness\.periodSeconds: must be a whole number of seconds/],
    ['{ periodSeconds: 10s }', /liveness\.periodSeconds: must be a number, not a string/],
    ['{ failureThreshold: 0 }', /liveness\.failureThreshold: must be at least 1/],
    [
      '{ periodSeconds: 2, timeoutSeconds: 5 }',
      /mesh\.yaml:1:47: liveness\.timeoutSeconds: 5 is longer than periodSeconds \(2\): give at most 2, or a longer periodSeconds/,
    ],
    ['{ period: 5 }', /mesh\.yaml:1:13: liveness\.period: unknown field "period"/],
    ['{ failureTreshold: 5 }', /unknown field "failureTreshold" \(did you mean "failureThreshold"\?\)/],
    ['10', /liveness: must be a map of name: value/],
  ] as const) {
    throwsCode(
      () => parseMeshConfig(`liveness: ${value}\n${DEMO}`, FILE),
      'MUTUAL_MESH_CONFIG_INVALID',
      value,
      message,
    );
  }
});

test("livenessProbe: Kubernetes' shape and defaults, the port the app's own unless given", () => {
  const probed = (probe: string, ports = '[8080, 9000]') =>
    parseMeshConfig(
      `services:\n  - name: web\n    command: [x]\n    ports: ${ports}\n    livenessProbe: ${probe}\n`,
      FILE,
    ).services[0]!.livenessProbe;
  assert.equal(parseMeshConfig(DEMO, FILE).services[0]!.livenessProbe, undefined);
  assert.deepEqual(probed('{ httpGet: { path: /healthz } }'), {
    initialDelaySeconds: 0,
    periodSeconds: 10,
    timeoutSeconds: 1,
    failureThreshold: 3,
    check: { kind: 'http', port: 8080, path: '/healthz', headers: [] },
  });
  assert.deepEqual(
    probed(
      '{ httpGet: { port: 9000, httpHeaders: [{ name: X-Probe, value: "1" }], scheme: HTTP }, initialDelaySeconds: 5, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 1, successThreshold: 1 }',
    ),
    {
      initialDelaySeconds: 5,
      periodSeconds: 2,
      timeoutSeconds: 2,
      failureThreshold: 1,
      check: { kind: 'http', port: 9000, path: '/', headers: [{ name: 'X-Probe', value: '1' }] },
    },
  );
  assert.deepEqual(probed('{ tcpSocket: {} }')?.check, { kind: 'tcp', port: 8080 });
  assert.deepEqual(probed('{ httpGet: { path: /tls, scheme: HTTPS } }')?.check, {
    kind: 'http',
    scheme: 'HTTPS',
    port: 8080,
    path: '/tls',
    headers: [],
  });
  // Kubernetes' grpc: { port, service? }; the service "" asks about the server as a whole.
  assert.deepEqual(probed('{ grpc: {} }')?.check, { kind: 'grpc', port: 8080, service: '' });
  assert.deepEqual(probed('{ grpc: { port: 9000, service: orders.v1.Orders } }')?.check, {
    kind: 'grpc',
    port: 9000,
    service: 'orders.v1.Orders',
  });
  // A port the service does not declare (one the app listens on by itself) is probed as written.
  assert.deepEqual(probed('{ tcpSocket: { port: 7000 } }', '[]')?.check, { kind: 'tcp', port: 7000 });
});

test('livenessProbe problems name file:line:column, the field and what to write', () => {
  const cases: Array<[string, RegExp]> = [
    [
      '{ exec: { command: [cat, /tmp/healthy] } }',
      /mesh\.yaml:5:28: services\[0\]\.livenessProbe\.exec: exec probes are not supported: mutual up runs no command inside the app to probe it; serve a health path and write httpGet: \{ path: \/healthz \}, or tcpSocket: \{\}/,
    ],
    [
      '{ grpc: { port: 9000 }, tcpSocket: {} }',
      /:5:55: services\[0\]\.livenessProbe\.tcpSocket: write only one of httpGet, tcpSocket and grpc \(grpc is given\)/,
    ],
    [
      '{ grpc: { port: grpc } }',
      /:5:36: services\[0\]\.livenessProbe\.grpc\.port: must be a port number, not "grpc": mesh\.yaml's ports have no names/,
    ],
    [
      '{ grpc: { service: 7 } }',
      /livenessProbe\.grpc\.service: must be text: YAML reads 7 as a number, so quote it: "7"/,
    ],
    [
      '{ grpc: { service: "a\\tb" } }',
      /livenessProbe\.grpc\.service: must be printable ASCII, at most 1024 characters: the name the app registered with its health service/,
    ],
    ['{ grpc: { port: 9000, host: 10.0.0.1 } }', /livenessProbe\.grpc\.host: unknown field "host"/],
    [
      '{ periodSeconds: 5 }',
      /mesh\.yaml:5:20: services\[0\]\.livenessProbe: says nothing to probe: write httpGet/,
    ],
    [
      '{ httpGet: { path: /a }, tcpSocket: {} }',
      /:5:56: services\[0\]\.livenessProbe\.tcpSocket: write only one of httpGet, tcpSocket and grpc \(httpGet is given\)/,
    ],
    [
      '{ httpget: { path: /a } }',
      /^[^\n]+ has a problem:\n[^\n]+:5:22: services\[0\]\.livenessProbe\.httpget: unknown field "httpget" \(did you mean "httpGet"\?\)$/,
    ],
    [
      '{ tcpSocket: {}, periodSecond: 2 }',
      /livenessProbe\.periodSecond: unknown field "periodSecond" \(did you mean "periodSeconds"\?\)/,
    ],
    [
      '{ httpGet: { path: /a, prot: 1 } }',
      /livenessProbe\.httpGet\.prot: unknown field "prot" \(did you mean "port"\?\)/,
    ],
    [
      '{ httpGet: { path: /a, port: http } }',
      /:5:49: services\[0\]\.livenessProbe\.httpGet\.port: must be a port number, not "http": mesh\.yaml's ports have no names, so write the number, e\.g\. 8080/,
    ],
    ['{ httpGet: { path: healthz } }', /livenessProbe\.httpGet\.path: must start with "\/"/],
    [
      '{ httpGet: { path: /a, scheme: https } }',
      /:5:51: services\[0\]\.livenessProbe\.httpGet\.scheme: must be HTTP \(the default: plain HTTP to the app, as its sidecar speaks to it\) or HTTPS \(for an app that serves TLS itself; its certificate is not verified, as by the kubelet\)/,
    ],
    [
      '{ httpGet: { path: /a, host: 10.0.0.1 } }',
      /livenessProbe\.httpGet\.host: host is not supported: the probe reaches the app at 127\.0\.0\.1/,
    ],
    [
      '{ httpGet: { path: /a, httpHeaders: [{ name: "X Probe", value: "1" }] } }',
      /livenessProbe\.httpGet\.httpHeaders\[0\]\.name: must be a header name/,
    ],
    [
      '{ tcpSocket: {}, successThreshold: 2 }',
      /livenessProbe\.successThreshold: must be 1: a liveness probe passes on one success \(Kubernetes refuses any other value\)/,
    ],
    [
      '{ tcpSocket: {}, periodSeconds: 2, timeoutSeconds: 5 }',
      /:5:71: services\[0\]\.livenessProbe\.timeoutSeconds: 5 is longer than periodSeconds \(2\): give at most 2, or a longer periodSeconds/,
    ],
    ['{ tcpSocket: {}, initialDelaySeconds: -1 }', /livenessProbe\.initialDelaySeconds: must be 0 or more/],
    ['{ tcpSocket: {}, failureThreshold: 0 }', /livenessProbe\.failureThreshold: must be at least 1/],
    [
      '/healthz',
      /services\[0\]\.livenessProbe: must be a map of name: value, e\.g\. \{ httpGet: \{ path: \/healthz \}/,
    ],
  ];
  for (const [probe, message] of cases) {
    throwsCode(
      () =>
        parseMeshConfig(
          `services:\n  - name: web\n    command: [x]\n    ports: [8080]\n    livenessProbe: ${probe}\n`,
          FILE,
        ),
      'MUTUAL_MESH_CONFIG_INVALID',
      probe,
      message,
    );
  }
  throwsCode(
    () =>
      parseMeshConfig(
        'services:\n  - name: web\n    command: [x]\n    upstreams: [api]\n    livenessProbe: { tcpSocket: {} }\n  - name: api\n    command: [x]\n    ports: [1]\n',
        FILE,
      ),
    'MUTUAL_MESH_CONFIG_INVALID',
    'no port',
    /^[^\n]+ has a problem:\n[^\n]+:5:33: services\[0\]\.livenessProbe\.tcpSocket: has no port, and the service declares none to default to: give port: PORT/,
  );
  throwsCode(
    () =>
      parseMeshConfig(
        'services:\n  - name: web\n    command: [x]\n    livenessProbe: { grpc: { service: x } }\n',
        FILE,
      ),
    'MUTUAL_MESH_CONFIG_INVALID',
    'grpc, no port',
    /:4:28: services\[0\]\.livenessProbe\.grpc: has no port, and the service declares none to default to/,
  );
  throwsCode(
    () =>
      parseMeshConfig(
        'services:\n  - name: web\n    command: [x]\n    ports: [1]\n    readinessProbe: {}\n    startupProbe: {}\n',
        FILE,
      ),
    'MUTUAL_MESH_CONFIG_INVALID',
    'readiness and startup probes',
    /:5:5: services\[0\]\.readinessProbe: readinessProbe is not supported[^\n]*\n[^\n]+:6:5: services\[0\]\.startupProbe: startupProbe is not supported: [^\n]+livenessProbe\.initialDelaySeconds/,
  );
});
