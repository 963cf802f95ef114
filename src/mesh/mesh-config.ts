// Reads a mesh file (mesh.yaml): parses it against mesh-schema.ts, checks what a schema cannot
// (names, upstreams, durations) and reports every problem at its file:line:column.
import { dirname, resolve } from 'node:path';
import { isMap, isPair, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { parseDurationWithin } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import { closestName } from '../policy/index.ts';
import { parseTrustDomain } from '../spiffe/index.ts';
import { readBoundedText } from '../store/index.ts';
import { duplicateKeys, LINEAR_KEYS, toJsOrProblem } from '../yaml/index.ts';
import {
  type AppLivenessProbe,
  CERTIFICATE_LIFETIME_BOUNDS,
  CONTROL_PLANE_NAMES,
  livenessProbeSchema,
  type MeshConfig,
  type MeshService,
  type MeshUpstream,
  meshFileFields,
  meshSchema,
  serviceSchema,
  upstreamSchema,
} from './mesh-schema.ts';

export type { AppLivenessProbe, MeshConfig, MeshPort, MeshService, MeshUpstream } from './mesh-schema.ts';
export { meshFileFields } from './mesh-schema.ts';

/** One problem in a mesh file, located so an editor can jump to it. */
export interface MeshConfigProblem {
  readonly path: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** A mesh file lists services in a few kilobytes; a bigger one is the wrong file. */
const MAX_MESH_FILE_BYTES = 1024 * 1024;

/** Problems listed in the error, in file order; the rest are counted. */
const MAX_LISTED_PROBLEMS = 20;

export async function loadMeshConfig(file: string): Promise<MeshConfig> {
  let text: string;
  try {
    text = await readBoundedText(file, {
      what: 'mesh file',
      label: file,
      maxBytes: MAX_MESH_FILE_BYTES,
      advice: 'a mesh file is a few kilobytes of YAML; is it the right file?',
    });
  } catch (error) {
    throw new MutualError(
      'MUTUAL_MESH_CONFIG_INVALID',
      `${(error as Error).message}${/[.?]$/.test((error as Error).message) ? '' : '.'} Pass one with -f, e.g. -f examples/demo/mesh.yaml`,
      { cause: error },
    );
  }
  return parseMeshConfig(text, resolve(file));
}

/**
 * Parses and checks a mesh.yaml. Every problem is collected and reported at once, each as
 * `file:line:column: path: what is wrong`.
 */
export function parseMeshConfig(text: string, file: string): MeshConfig {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, ...LINEAR_KEYS });
  const at = (offset: number) => lineCounter.linePos(offset);
  const yamlProblems = [
    ...document.errors.map((error) => ({ offset: error.pos[0], message: error.message.split('\n')[0] })),
    ...(document.errors.length > 0 ? [] : duplicateKeys(document)),
  ];
  const js = yamlProblems.length > 0 ? undefined : toJsOrProblem(document);
  if (js !== undefined && 'problem' in js) yamlProblems.push(js.problem);
  if (yamlProblems.length > 0) {
    fail(
      file,
      yamlProblems.map((problem) => {
        const { line, col } = at(problem.offset);
        return { path: '', line, column: col, message: `not valid YAML: ${problem.message}` };
      }),
    );
  }
  const locate = (path: ReadonlyArray<PropertyKey>, isKey = false) => {
    const { line, col } = at(offsetOf(document.contents, path, isKey));
    return { line, column: col };
  };
  const input: unknown = (js as { value: unknown }).value ?? {};
  const parsed = meshSchema.safeParse(input);
  const problems: MeshConfigProblem[] = parsed.success
    ? []
    : parsed.error.issues.flatMap((issue) => {
        const path = issue.path;
        // One problem per unknown key: a service with two typos names both.
        if (issue.code === 'unrecognized_keys') {
          return issue.keys.map((key) => ({
            path: formatPath([...path, key]),
            ...locate([...path, key], true),
            message: unsupportedField(key, path) ?? `unknown field "${key}"${suggest(key, knownKeys(path))}`,
          }));
        }
        const value = valueAt(input, path);
        const message =
          value === undefined
            ? 'is required'
            : // A number that is not whole: the schema's own words ("must be a whole number").
              issue.code === 'invalid_type' && issue.expected !== 'int'
              ? typeProblem(issue.expected, path, value)
              : issue.message;
        return [{ path: formatPath(path), ...locate(path), message }];
      });
  // Reference problems too, on whatever parses: one run names both kinds.
  problems.push(...referenceProblems(input, locate));
  if (!parsed.success || problems.length > 0) fail(file, problems);
  return meshConfigOf(parsed.data, file);
}

type RawMesh = z.infer<typeof meshSchema>;
type Locate = (path: ReadonlyArray<PropertyKey>, isKey?: boolean) => { line: number; column: number };
type UpstreamSpec = { service: string; port?: number | undefined; env?: string | undefined };

/**
 * Checks what a schema cannot (trust domain, unique names, upstreams that exist) on every part of
 * the file that parses by itself, so schema errors elsewhere do not hide these until the next run.
 * A part that does not parse is not guessed at: with a name unreadable, no upstream is called
 * unknown; with a service's ports unreadable, no upstream to it is checked for its port.
 */
function referenceProblems(input: unknown, locate: Locate): MeshConfigProblem[] {
  const problems: MeshConfigProblem[] = [];
  const problem = (path: ReadonlyArray<PropertyKey>, message: string) =>
    problems.push({ path: formatPath(path), ...locate(path), message });
  const mesh = fieldsOf(input);
  const trustDomain = parsedOrUndefined(meshSchema.shape.trustDomain, mesh.trustDomain);
  try {
    if (trustDomain !== undefined) parseTrustDomain(trustDomain);
  } catch (error) {
    problem(['trustDomain'], (error as Error).message);
  }
  const certificateLifetime = parsedOrUndefined(
    meshSchema.shape.certificateLifetime,
    mesh.certificateLifetime,
  );
  try {
    // Short lifetimes let a user watch certificates rotate (sidecars renew at 70% of the validity).
    if (certificateLifetime !== undefined)
      parseDurationWithin(certificateLifetime, 'certificateLifetime', CERTIFICATE_LIFETIME_BOUNDS);
  } catch (error) {
    problem(['certificateLifetime'], (error as Error).message);
  }
  // A probe still waiting when the next is due would overlap it.
  const liveness = parsedOrUndefined(meshSchema.shape.liveness, mesh.liveness);
  if (liveness !== undefined && liveness.timeoutSeconds > liveness.periodSeconds)
    problem(
      ['liveness', 'timeoutSeconds'],
      `${liveness.timeoutSeconds} is longer than periodSeconds (${liveness.periodSeconds}): give at most ${liveness.periodSeconds}, or a longer periodSeconds`,
    );
  const services = (Array.isArray(mesh.services) ? mesh.services : []).map((entry, index) => {
    const service = fieldsOf(entry);
    problems.push(
      ...livenessProbeProblems(
        service.livenessProbe,
        parsedOrUndefined(serviceSchema.shape.ports, service.ports),
        ['services', index, 'livenessProbe'],
        locate,
      ),
    );
    return {
      name: parsedOrUndefined(serviceSchema.shape.name, service.name),
      ports: parsedOrUndefined(serviceSchema.shape.ports, service.ports)?.map(portNumberOf),
      upstreams: (Array.isArray(service.upstreams) ? service.upstreams : []).map((upstream) => {
        const parsed = parsedOrUndefined(upstreamSchema, upstream);
        return parsed === undefined ? undefined : upstreamSpec(parsed);
      }),
    };
  });
  const byName = new Map<string, (typeof services)[number]>();
  for (const [index, service] of services.entries()) {
    if (service.name !== undefined && byName.has(service.name))
      problem(['services', index, 'name'], `service "${service.name}" is declared twice`);
    if (service.name !== undefined && CONTROL_PLANE_NAMES.includes(service.name))
      problem(
        ['services', index, 'name'],
        `"${service.name}" is the name of the mesh's own ${service.name} service (its log is logs/${service.name}.log); choose another name`,
      );
    if (service.name !== undefined) byName.set(service.name, service);
    const ports = service.ports ?? [];
    const duplicate = ports.find((port, i) => ports.indexOf(port) !== i);
    if (duplicate !== undefined) problem(['services', index, 'ports'], `port ${duplicate} is listed twice`);
  }
  const isEveryNameKnown = services.every((service) => service.name !== undefined);
  for (const [index, service] of services.entries()) {
    const envNames: string[] = [];
    for (const [upstreamIndex, spec] of service.upstreams.entries()) {
      if (spec === undefined) continue;
      const path = ['services', index, 'upstreams', upstreamIndex];
      const target = byName.get(spec.service);
      if (!target) {
        if (isEveryNameKnown)
          problem(path, `no service named "${spec.service}"${suggest(spec.service, [...byName.keys()])}`);
      } else if (target.ports?.length === 0) {
        problem(path, `service "${spec.service}" declares no ports, so nothing can call it`);
      } else if (target.ports && spec.port !== undefined && !target.ports.includes(spec.port)) {
        problem(
          path,
          `service "${spec.service}" has no port ${spec.port}; its ports are ${target.ports.join(', ')}`,
        );
      }
      envNames.push(spec.env ?? envPrefix(spec.service, spec.port));
    }
    const clash = envNames.find((name, i) => envNames.indexOf(name) !== i);
    if (clash !== undefined) {
      problem(
        ['services', index, 'upstreams'],
        `two upstreams would both set ${clash}_ADDR; give one an env: prefix`,
      );
    }
  }
  return problems;
}

/** The MeshConfig of a file that passed every check. */
function meshConfigOf(raw: RawMesh, file: string): MeshConfig {
  const baseDir = dirname(file);
  const byName = new Map(raw.services.map((service) => [service.name, service]));
  const services: MeshService[] = raw.services.map((service) => {
    const upstreams = service.upstreams.map((entry): MeshUpstream => {
      const spec = upstreamSpec(entry);
      const targetPorts = (byName.get(spec.service)?.ports ?? []).map(portNumberOf);
      return {
        service: spec.service,
        port: spec.port ?? targetPorts[0] ?? 0,
        env: spec.env ?? envPrefix(spec.service, spec.port),
      };
    });
    return {
      name: service.name,
      namespace: service.namespace,
      serviceAccount: service.serviceAccount ?? service.name,
      labels: service.labels ?? { app: service.name },
      command: typeof service.command === 'string' ? ['/bin/sh', '-c', service.command] : service.command,
      cwd: resolve(baseDir, service.cwd ?? '.'),
      env: service.env,
      ports: service.ports.map((port) =>
        typeof port === 'number'
          ? { port, protocol: 'http' as const }
          : { port: port.port, protocol: port.protocol },
      ),
      upstreams,
      opaquePorts: service.opaquePorts,
      skipInboundPorts: service.skipInboundPorts,
      restart: service.restart,
      ...(service.livenessProbe ? { livenessProbe: appLivenessProbe(service) } : {}),
    };
  });
  return {
    file,
    trustDomain: parseTrustDomain(raw.trustDomain),
    policyDir: raw.policyDir === undefined ? undefined : resolve(baseDir, raw.policyDir),
    mode: raw.mode,
    certificateLifetime: raw.certificateLifetime,
    liveness: raw.liveness,
    services,
  };
}

/**
 * What a schema cannot say of a service's livenessProbe: exactly one of httpGet, tcpSocket and grpc, a
 * port to probe (the app's own when it has one), a timeout within the period.
 */
function livenessProbeProblems(
  value: unknown,
  ports: RawMesh['services'][number]['ports'] | undefined,
  path: readonly PropertyKey[],
  locate: Locate,
): MeshConfigProblem[] {
  if (value === undefined) return [];
  const problems: MeshConfigProblem[] = [];
  const problem = (at: readonly PropertyKey[], message: string) =>
    problems.push({ path: formatPath(at), ...locate(at), message });
  const probe = fieldsOf(value);
  // In the file's order: the second one written is the one to point at.
  const checks = Object.keys(probe).filter((key) => ['httpGet', 'tcpSocket', 'exec', 'grpc'].includes(key));
  const isEveryKeyKnown = Object.keys(probe).every((key) => key in livenessProbeSchema.shape);
  // An unknown key may be the check misspelled (httpget): that problem says enough.
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    checks.length === 0 &&
    isEveryKeyKnown
  )
    problem(
      path,
      'says nothing to probe: write httpGet: { path: /healthz } (a path the app answers 200-399), tcpSocket: {} (the app accepts connections) or grpc: {} (the app serves grpc.health.v1.Health)',
    );
  if (checks.length > 1 && !checks.includes('exec'))
    problem([...path, checks[1]!], `write only one of httpGet, tcpSocket and grpc (${checks[0]} is given)`);
  const parsed = parsedOrUndefined(livenessProbeSchema, value);
  if (parsed === undefined) return problems;
  // A probe still waiting when the next is due would overlap it (as mesh-wide liveness).
  if (parsed.timeoutSeconds > parsed.periodSeconds)
    problem(
      [...path, 'timeoutSeconds'],
      `${parsed.timeoutSeconds} is longer than periodSeconds (${parsed.periodSeconds}): give at most ${parsed.periodSeconds}, or a longer periodSeconds`,
    );
  const check = parsed.httpGet
    ? 'httpGet'
    : parsed.tcpSocket
      ? 'tcpSocket'
      : parsed.grpc
        ? 'grpc'
        : undefined;
  if (check !== undefined && parsed[check]?.port === undefined && ports !== undefined && ports.length === 0)
    problem(
      [...path, check],
      'has no port, and the service declares none to default to: give port: PORT (where the app listens), or ports: [PORT] to the service',
    );
  return problems;
}

/** A service's livenessProbe as `up` runs it (one that passed livenessProbeProblems). */
function appLivenessProbe(service: RawMesh['services'][number]): AppLivenessProbe {
  const probe = service.livenessProbe!;
  const defaultPort = service.ports.map(portNumberOf)[0] ?? 0;
  const settings = {
    initialDelaySeconds: probe.initialDelaySeconds,
    periodSeconds: probe.periodSeconds,
    timeoutSeconds: probe.timeoutSeconds,
    failureThreshold: probe.failureThreshold,
  };
  if (probe.httpGet)
    return {
      ...settings,
      check: {
        kind: 'http',
        ...(probe.httpGet.scheme === 'HTTPS' ? { scheme: 'HTTPS' as const } : {}),
        port: probe.httpGet.port ?? defaultPort,
        path: probe.httpGet.path,
        headers: probe.httpGet.httpHeaders ?? [],
      },
    };
  if (probe.grpc)
    return {
      ...settings,
      check: { kind: 'grpc', port: probe.grpc.port ?? defaultPort, service: probe.grpc.service ?? '' },
    };
  return { ...settings, check: { kind: 'tcp', port: probe.tcpSocket?.port ?? defaultPort } };
}

/** `emoji:8080` or `{ service: emoji, port: 8080 }` as one shape. */
function upstreamSpec(entry: RawMesh['services'][number]['upstreams'][number]): UpstreamSpec {
  if (typeof entry !== 'string') return entry;
  const [service, port] = entry.split(':');
  return { service: service!, port: port === undefined ? undefined : Number(port) };
}

function portNumberOf(port: number | { port: number }): number {
  return typeof port === 'number' ? port : port.port;
}

function fieldsOf(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function parsedOrUndefined<T>(schema: z.ZodType<T>, value: unknown): T | undefined {
  const parsed = schema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** EMOJI for `emoji`, EMOJI_8080 for `emoji:8080`, WEB_API for `web-api`. */
export function envPrefix(service: string, port?: number): string {
  const base = service.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return port === undefined ? base : `${base}_${port}`;
}

function fail(file: string, unsorted: readonly MeshConfigProblem[]): never {
  // In file order, as an editor lists them.
  const problems = [...unsorted].sort((a, b) => a.line - b.line || a.column - b.column);
  const lines = problems
    .slice(0, MAX_LISTED_PROBLEMS)
    .map(
      (problem) =>
        `  ${file}:${problem.line}:${problem.column}: ${problem.path ? `${problem.path}: ` : ''}${problem.message}`,
    );
  if (problems.length > MAX_LISTED_PROBLEMS)
    lines.push(`  … and ${problems.length - MAX_LISTED_PROBLEMS} more (is it a mesh file?)`);
  throw new MutualError(
    'MUTUAL_MESH_CONFIG_INVALID',
    `${file} has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${lines.join('\n')}`,
    { detail: { file, problems: JSON.stringify(problems) } },
  );
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i > 0 ? '.' : ''}${String(part)}`))
    .join('');
}

/** The offset of the node at `path` (or of its key), else of its nearest existing parent. */
function offsetOf(root: unknown, path: ReadonlyArray<PropertyKey>, isKey: boolean): number {
  let node = root as Node | null;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const [i, part] of path.entries()) {
    if (!node || !('items' in node)) break;
    const items = (node as { items: unknown[] }).items;
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === part);
      if (!pair) break;
      if (isKey && i === path.length - 1) return (pair.key as Node).range?.[0] ?? offset;
      next = pair.value;
    } else {
      next = items[Number(part)];
    }
    if (!next || typeof next !== 'object' || !('range' in next)) break;
    node = next as Node;
    offset = node.range?.[0] ?? offset;
  }
  return offset;
}

function valueAt(value: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}

/** Examples of the shape a field takes, for "must be a list, e.g. [8080]". */
const SHAPE_EXAMPLES: Readonly<Record<string, string>> = {
  services: '- name: web (one entry per service)',
  ports: '[8080] or [{ port: 6379, protocol: tcp }]',
  upstreams: '[emoji, "voting:8080"]',
  opaquePorts: '[6379]',
  skipInboundPorts: '[9090]',
  env: '{ LOG_LEVEL: debug, WORKERS: "4" }',
  labels: '{ app: web, version: v1 }',
  livenessProbe: '{ httpGet: { path: /healthz }, periodSeconds: 5 }',
  httpGet: '{ path: /healthz, port: 8080 }',
  tcpSocket: '{ port: 6379 } or {}',
  grpc: '{ port: 9090, service: orders.v1.Orders } or {}',
  httpHeaders: '[{ name: X-Probe, value: "1" }]',
};

/** A wrong type said in the file's terms (list, map, text), with how to write it. */
function typeProblem(expected: string, path: ReadonlyArray<PropertyKey>, value: unknown): string {
  const field = [...path].reverse().find((part) => typeof part === 'string');
  const example = field === undefined ? undefined : SHAPE_EXAMPLES[field];
  const eg = example === undefined ? '' : `, e.g. ${example}`;
  if (expected === 'array') return `must be a list${eg}`;
  if (expected === 'number' && field === 'port' && typeof value === 'string')
    return `must be a port number, not "${value}": mesh.yaml's ports have no names, so write the number, e.g. 8080`;
  if (expected === 'record' || expected === 'object') return `must be a map of name: value${eg}`;
  if (expected === 'string' && (typeof value === 'number' || typeof value === 'boolean'))
    return `must be text: YAML reads ${String(value)} as a ${typeof value}, so quote it: "${String(value)}"`;
  const got = Array.isArray(value) ? 'a list' : value === null ? 'empty' : `a ${typeof value}`;
  return `must be ${expected === 'string' ? 'text' : `a ${expected}`}, not ${got}`;
}

function knownKeys(path: ReadonlyArray<PropertyKey>): string[] {
  const fields = meshFileFields();
  if (path.length === 0) return fields.mesh;
  if (path[0] === 'services' && path.length === 2) return fields.service;
  if (path[0] === 'liveness' && path.length === 1) return fields.liveness;
  const probe = path.indexOf('livenessProbe');
  if (probe >= 0) {
    const inside = path.slice(probe + 1);
    if (inside.length === 0) return fields.livenessProbe;
    if (inside[0] === 'httpGet' && inside.length === 1) return fields.httpGet;
    if (inside[0] === 'tcpSocket' && inside.length === 1) return fields.tcpSocket;
    if (inside[0] === 'grpc' && inside.length === 1) return fields.grpc;
    if (inside.includes('httpHeaders')) return ['name', 'value'];
    return [];
  }
  if (path.includes('upstreams')) return fields.upstream;
  if (path.includes('ports')) return fields.port;
  return [];
}

/** Kubernetes fields a Kubernetes user may write that `up` has no use for: why, and what to write. */
function unsupportedField(key: string, path: ReadonlyArray<PropertyKey>): string | undefined {
  const isService = path[0] === 'services' && path.length === 2;
  if (isService && (key === 'readinessProbe' || key === 'startupProbe'))
    return `${key} is not supported: mutual up sends an app calls once it accepts connections on each of its ports${key === 'startupProbe' ? '; give a slow start time with livenessProbe.initialDelaySeconds' : ''}`;
  if (path.at(-1) === 'httpGet' && key === 'host')
    return 'host is not supported: the probe reaches the app at 127.0.0.1 (in its pod with --isolation netns); leave host out';
  if (path.at(-1) === 'tcpSocket' && key === 'host')
    return 'host is not supported: the probe connects to the app at 127.0.0.1 (in its pod with --isolation netns); leave host out';
  return undefined;
}

/** ` (did you mean "upstreams"?)` when a known name is one or two edits away. */
function suggest(word: string, candidates: readonly string[]): string {
  const close = closestName(word, candidates);
  return close === undefined ? '' : ` (did you mean "${close}"?)`;
}
