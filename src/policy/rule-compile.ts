// One AuthorizationPolicy rule → two plain-data forms, built once at load: one for HTTP requests
// and one for TCP connections (Istio: an ALLOW rule with HTTP-only fields never matches TCP; DENY
// and AUDIT rules drop those fields). Every object of a kind has the same shape (unset = null), so
// matchRule() stays monomorphic: no closures, no regex and no parsing per request.
import { compileIpMatcher, type IpMatcher } from './ip-block.ts';
import type { AuthorizationAction } from './resource.ts';
import { HEADER_CONDITION, HTTP_OPERATION_FIELDS } from './rules-check.ts';
import type { AuthorizationRuleInput, ConditionInput, OperationInput, SourceInput } from './schema.ts';
import {
  compileServiceAccounts,
  matchesServiceAccount,
  type ServiceAccountPatterns,
} from './service-account.ts';
import {
  compileNamespacePatterns,
  compilePatterns,
  exactValues,
  matchesHeaderElements,
  matchesNamespace,
  matchesPatterns,
  type NamespacePatterns,
  type Patterns,
} from './string-match.ts';

/** A request or connection, normalised once per call (principal without `spiffe://`, path without query). */
export interface EvaluationContext {
  readonly principal: string | undefined;
  readonly ip: string;
  readonly port: number;
  readonly method: string;
  readonly path: string;
  /** The normalised path with its query, as forwarded: Envoy's `:path`. */
  readonly target: string;
  /** The Host (HTTP/2 :authority) as sent: what Istio's `hosts` compare, case-insensitively. */
  readonly rawHost: string;
  /** The host without a trailing dot, with its `:port` if it has one. */
  readonly host: string;
  /** The host without its `:port`, or undefined when it has none. */
  readonly hostname: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

interface SourceData {
  readonly principals: Patterns | null;
  readonly notPrincipals: Patterns | null;
  readonly namespaces: NamespacePatterns | null;
  readonly notNamespaces: NamespacePatterns | null;
  readonly serviceAccounts: ServiceAccountPatterns | null;
  readonly notServiceAccounts: ServiceAccountPatterns | null;
  readonly ipBlocks: IpMatcher | null;
  readonly notIpBlocks: IpMatcher | null;
}

interface OperationData {
  readonly ports: ReadonlySet<number> | null;
  readonly notPorts: ReadonlySet<number> | null;
  readonly methods: Patterns | null;
  readonly notMethods: Patterns | null;
  readonly paths: Patterns | null;
  readonly notPaths: Patterns | null;
  readonly hosts: Patterns | null;
  readonly notHosts: Patterns | null;
  /**
   * DENY and AUDIT: `hosts` also match the host without its port or trailing dot (an app reads
   * `admin.internal.:80` as admin.internal), `notHosts` only the Host as sent. ALLOW: the other way
   * round. So a rule never lets in what Istio's exact match keeps out.
   */
  readonly isDenyLike: boolean;
}

const enum_ = { principal: 0, namespace: 1, ip: 2, port: 3, header: 4, serviceAccount: 5 } as const;

interface ConditionData {
  readonly kind: (typeof enum_)[keyof typeof enum_];
  readonly header: string;
  /**
   * Istio matches a header as one string, every value of it joined with "," (`foo,bar`). An app
   * may also read one `,`-separated element of it. DENY and AUDIT: `values` also match an element,
   * `notValues` only the whole. ALLOW: the other way round. So a rule never lets in what Istio
   * keeps out, and `x-role: user,admin` cannot slip past a DENY of `admin`.
   */
  readonly isDenyLike: boolean;
  /** `request.experimental.inline.headers[...]`: `values` match any element in ALLOW rules too. */
  readonly isList: boolean;
  readonly values: Patterns | null;
  readonly notValues: Patterns | null;
  readonly namespaces: NamespacePatterns | null;
  readonly notNamespaces: NamespacePatterns | null;
  readonly serviceAccounts: ServiceAccountPatterns | null;
  readonly notServiceAccounts: ServiceAccountPatterns | null;
  readonly ips: IpMatcher | null;
  readonly notIps: IpMatcher | null;
  readonly ports: ReadonlySet<number> | null;
  readonly notPorts: ReadonlySet<number> | null;
}

/** Empty `sources`/`operations` = unset = matches anything, as in Istio. */
export interface RuleData {
  readonly sources: readonly SourceData[];
  readonly operations: readonly OperationData[];
  readonly conditions: readonly ConditionData[];
}

export interface CompiledRule {
  readonly http: RuleData;
  /** Undefined when the rule can never match a TCP connection. */
  readonly tcp: RuleData | undefined;
  /** Exact principals the rule requires (one of), when it requires one: an index key. */
  readonly principalKeys: readonly string[] | undefined;
}

/** `namespace` is the policy's: a service account named without one is in it, as in Istio. */
export function compileRule(
  rule: AuthorizationRuleInput,
  action: AuthorizationAction,
  namespace: string,
): CompiledRule {
  const sourceInputs = (rule.from ?? []).map((from) => from.source);
  const operationInputs = (rule.to ?? []).map((to) => to.operation);
  const conditionInputs = rule.when ?? [];
  const sources = sourceInputs.map((source) => compileSource(source, namespace));
  const condition = (input: ConditionInput) => compileCondition(input, namespace, action !== 'ALLOW');
  const http: RuleData = {
    sources,
    operations: operationInputs.map((operation) => compileOperation(operation, true, action !== 'ALLOW')),
    conditions: conditionInputs.map(condition),
  };
  const usesHttp =
    operationInputs.some((operation) =>
      HTTP_OPERATION_FIELDS.some((field) => operation[field] !== undefined),
    ) || conditionInputs.some((condition) => HEADER_CONDITION.test(condition.key));
  let tcp: RuleData | undefined = http;
  if (usesHttp && action === 'ALLOW') tcp = undefined;
  else if (usesHttp) {
    tcp = {
      sources,
      operations: operationInputs.map((operation) => compileOperation(operation, false, true)),
      conditions: conditionInputs.filter((input) => !HEADER_CONDITION.test(input.key)).map(condition),
    };
  }
  return { http, tcp, principalKeys: principalKeys(sourceInputs) };
}

export function matchRule(rule: RuleData, context: EvaluationContext): boolean {
  const { sources, operations, conditions } = rule;
  if (sources.length > 0) {
    let isMatch = false;
    for (let i = 0; i < sources.length && !isMatch; i++) isMatch = matchSource(sources[i]!, context);
    if (!isMatch) return false;
  }
  if (operations.length > 0) {
    let isMatch = false;
    for (let i = 0; i < operations.length && !isMatch; i++) isMatch = matchOperation(operations[i]!, context);
    if (!isMatch) return false;
  }
  for (let i = 0; i < conditions.length; i++) if (!matchCondition(conditions[i]!, context)) return false;
  return true;
}

/** A value that may be absent (no principal over plaintext): positive lists need it, `not` lists match its absence. */
function matchOptional(
  values: Patterns | null,
  notValues: Patterns | null,
  value: string | undefined,
): boolean {
  if (values !== null && (value === undefined || !matchesPatterns(values, value))) return false;
  if (notValues !== null && value !== undefined && matchesPatterns(notValues, value)) return false;
  return true;
}

/** Namespaces are read from the principal, so a peer without one (plaintext) has none. */
function matchNamespaces(
  namespaces: NamespacePatterns | null,
  notNamespaces: NamespacePatterns | null,
  principal: string | undefined,
): boolean {
  if (namespaces !== null && (principal === undefined || !matchesNamespace(namespaces, principal)))
    return false;
  if (notNamespaces !== null && principal !== undefined && matchesNamespace(notNamespaces, principal)) {
    return false;
  }
  return true;
}

/** Service accounts are read from the principal too: a plaintext peer is in none. */
function matchServiceAccounts(
  accounts: ServiceAccountPatterns | null,
  notAccounts: ServiceAccountPatterns | null,
  principal: string | undefined,
): boolean {
  if (accounts !== null && (principal === undefined || !matchesServiceAccount(accounts, principal))) {
    return false;
  }
  if (notAccounts !== null && principal !== undefined && matchesServiceAccount(notAccounts, principal)) {
    return false;
  }
  return true;
}

function matchSource(source: SourceData, context: EvaluationContext): boolean {
  return (
    matchOptional(source.principals, source.notPrincipals, context.principal) &&
    matchNamespaces(source.namespaces, source.notNamespaces, context.principal) &&
    matchServiceAccounts(source.serviceAccounts, source.notServiceAccounts, context.principal) &&
    (source.ipBlocks === null || source.ipBlocks(context.ip)) &&
    (source.notIpBlocks === null || !source.notIpBlocks(context.ip))
  );
}

function matchOperation(operation: OperationData, context: EvaluationContext): boolean {
  if (operation.ports !== null && !operation.ports.has(context.port)) return false;
  if (operation.notPorts?.has(context.port)) return false;
  if (operation.methods !== null && !matchesPatterns(operation.methods, context.method)) return false;
  if (operation.notMethods !== null && matchesPatterns(operation.notMethods, context.method)) return false;
  if (operation.paths !== null && !matchesPatterns(operation.paths, context.path)) return false;
  if (operation.notPaths !== null && matchesPatterns(operation.notPaths, context.path)) return false;
  const { isDenyLike } = operation;
  if (operation.hosts !== null && !matchHost(operation.hosts, context, isDenyLike)) return false;
  if (operation.notHosts !== null && matchHost(operation.notHosts, context, !isDenyLike)) return false;
  return true;
}

/**
 * Hosts match case-insensitively, the Host as sent (Istio: "exact match authorization policies
 * only match the exact string"), and when `isAnyReading` also without its port or trailing dot.
 */
function matchHost(hosts: Patterns, context: EvaluationContext, isAnyReading: boolean): boolean {
  if (matchesPatterns(hosts, context.rawHost)) return true;
  return (
    isAnyReading &&
    (matchesPatterns(hosts, context.host) ||
      (context.hostname !== undefined && matchesPatterns(hosts, context.hostname)))
  );
}

function matchCondition(condition: ConditionData, context: EvaluationContext): boolean {
  switch (condition.kind) {
    case enum_.principal:
      return matchOptional(condition.values, condition.notValues, context.principal);
    case enum_.namespace:
      return matchNamespaces(condition.namespaces, condition.notNamespaces, context.principal);
    case enum_.serviceAccount:
      return matchServiceAccounts(condition.serviceAccounts, condition.notServiceAccounts, context.principal);
    case enum_.ip:
      return (
        (condition.ips === null || condition.ips(context.ip)) &&
        (condition.notIps === null || !condition.notIps(context.ip))
      );
    case enum_.port:
      return (
        (condition.ports === null || condition.ports.has(context.port)) &&
        (condition.notPorts === null || !condition.notPorts.has(context.port))
      );
    default: {
      // Envoy's view of a header sent more than once: its values joined with ",".
      const raw = headerOf(context, condition.header);
      const value = Array.isArray(raw) ? (raw.length > 0 ? raw.join(',') : undefined) : raw;
      const { values, notValues, isDenyLike, isList } = condition;
      if (values !== null) {
        if (value === undefined) return false;
        const isElementwise = isDenyLike || isList;
        if (!(isElementwise ? matchesHeaderElements(values, value) : matchesPatterns(values, value))) {
          return false;
        }
      }
      if (notValues !== null && value !== undefined) {
        if (isDenyLike ? matchesPatterns(notValues, value) : matchesHeaderElements(notValues, value)) {
          return false;
        }
      }
      return true;
    }
  }
}

/**
 * A request header as Envoy's header map holds it: with the pseudo-headers an HTTP/1 request has
 * no line for (Istio's own testdata matches `request.headers[:method]`), taken from what policy
 * matched, so `:path` is the normalised path, not an HTTP/2 client's raw one.
 */
function headerOf(context: EvaluationContext, name: string): string | string[] | undefined {
  if (name === ':method') return context.method;
  if (name === ':path') return context.target;
  if (name === ':authority') return context.rawHost;
  return context.headers[name];
}

function principalKeys(sources: readonly SourceInput[]): readonly string[] | undefined {
  if (sources.length === 0) return undefined;
  const keys: string[] = [];
  for (const source of sources) {
    const exact = source.principals === undefined ? undefined : exactValues(source.principals);
    if (exact === undefined || exact.length === 0) return undefined;
    keys.push(...exact);
  }
  return keys;
}

function patterns(
  values: readonly string[] | undefined,
  isCaseInsensitive = false,
  isPresence = false,
): Patterns | null {
  return values?.length ? compilePatterns(values, isCaseInsensitive, isPresence) : null;
}

function namespacePatterns(values: readonly string[] | undefined): NamespacePatterns | null {
  return values?.length ? compileNamespacePatterns(values) : null;
}

function ips(values: readonly string[] | undefined): IpMatcher | null {
  return values?.length ? compileIpMatcher(values) : null;
}

function ports(values: readonly (string | number)[] | undefined): ReadonlySet<number> | null {
  return values?.length ? new Set(values.map(Number)) : null;
}

function serviceAccounts(
  values: readonly string[] | undefined,
  namespace: string,
): ServiceAccountPatterns | null {
  return values?.length ? compileServiceAccounts(values, namespace) : null;
}

function compileSource(source: SourceInput, namespace: string): SourceData {
  return {
    principals: patterns(source.principals),
    notPrincipals: patterns(source.notPrincipals),
    namespaces: namespacePatterns(source.namespaces),
    notNamespaces: namespacePatterns(source.notNamespaces),
    serviceAccounts: serviceAccounts(source.serviceAccounts, namespace),
    notServiceAccounts: serviceAccounts(source.notServiceAccounts, namespace),
    ipBlocks: ips(source.ipBlocks),
    notIpBlocks: ips(source.notIpBlocks),
  };
}

function compileOperation(operation: OperationInput, isHttp: boolean, isDenyLike: boolean): OperationData {
  const http = (values: readonly string[] | undefined, isCaseInsensitive = false) =>
    isHttp ? patterns(values, isCaseInsensitive) : null;
  return {
    ports: ports(operation.ports),
    notPorts: ports(operation.notPorts),
    methods: http(operation.methods),
    notMethods: http(operation.notMethods),
    paths: http(operation.paths),
    notPaths: http(operation.notPaths),
    hosts: http(operation.hosts, true),
    notHosts: http(operation.notHosts, true),
    isDenyLike,
  };
}

function compileCondition(condition: ConditionInput, namespace: string, isDenyLike: boolean): ConditionData {
  const { key, values, notValues } = condition;
  const header = HEADER_CONDITION.exec(key);
  const base = {
    header: header ? header[2]!.toLowerCase() : '',
    isDenyLike,
    isList: header?.[1] !== undefined,
    values: null,
    notValues: null,
    namespaces: null,
    notNamespaces: null,
    serviceAccounts: null,
    notServiceAccounts: null,
    ips: null,
    notIps: null,
    ports: null,
    notPorts: null,
  };
  // A header `*` is Envoy's present_match: `x-debug:` with no value is there, so it matches.
  if (header) {
    return {
      ...base,
      kind: enum_.header,
      values: patterns(values, false, true),
      notValues: patterns(notValues, false, true),
    };
  }
  switch (key) {
    case 'source.principal':
      return { ...base, kind: enum_.principal, values: patterns(values), notValues: patterns(notValues) };
    case 'source.namespace':
      return {
        ...base,
        kind: enum_.namespace,
        namespaces: namespacePatterns(values),
        notNamespaces: namespacePatterns(notValues),
      };
    case 'source.serviceAccount':
      return {
        ...base,
        kind: enum_.serviceAccount,
        serviceAccounts: serviceAccounts(values, namespace),
        notServiceAccounts: serviceAccounts(notValues, namespace),
      };
    case 'source.ip':
      return { ...base, kind: enum_.ip, ips: ips(values), notIps: ips(notValues) };
    case 'destination.port':
      return { ...base, kind: enum_.port, ports: ports(values), notPorts: ports(notValues) };
    default:
      throw new Error(`condition key ${key} passed validation but has no evaluator`);
  }
}
