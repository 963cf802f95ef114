// One AuthorizationPolicy rule → two predicates, built once at load: one for HTTP requests and
// one for TCP connections (Istio: an ALLOW rule with HTTP-only fields never matches TCP; DENY and
// AUDIT rules drop those fields). No regex and no parsing per request.
import { compileIpMatcher } from './ip-block.ts';
import type { AuthorizationAction } from './resource.ts';
import { HEADER_CONDITION, HTTP_OPERATION_FIELDS } from './rules-check.ts';
import type { AuthorizationRuleInput, ConditionInput, OperationInput, SourceInput } from './schema.ts';
import { compileStringMatcher, exactValues, type StringMatcher } from './string-match.ts';

/** A request or connection, normalised once per call (principal without `spiffe://`, path without query). */
export interface EvaluationContext {
  readonly principal: string | undefined;
  readonly namespace: string | undefined;
  readonly ip: string;
  readonly port: number;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type Predicate = (context: EvaluationContext) => boolean;

export interface CompiledRule {
  readonly http: Predicate;
  /** Undefined when the rule can never match a TCP connection. */
  readonly tcp: Predicate | undefined;
  /** Exact principals the rule requires (one of), when it requires one: an index key. */
  readonly principalKeys: readonly string[] | undefined;
}

const always: Predicate = () => true;

export function compileRule(rule: AuthorizationRuleInput, action: AuthorizationAction): CompiledRule {
  const sources = (rule.from ?? []).map((from) => from.source);
  const operations = (rule.to ?? []).map((to) => to.operation);
  const conditions = rule.when ?? [];
  const from = anyOf(sources.map(compileSource));
  const httpTo = anyOf(operations.map((operation) => compileOperation(operation, true)));
  const httpWhen = conditions.map((condition) => compileCondition(condition));
  const http = allOf([from, httpTo, ...httpWhen]);
  const usesHttp =
    operations.some((operation) => HTTP_OPERATION_FIELDS.some((field) => operation[field] !== undefined)) ||
    conditions.some((condition) => HEADER_CONDITION.test(condition.key));
  let tcp: Predicate | undefined = http;
  if (usesHttp && action === 'ALLOW') tcp = undefined;
  else if (usesHttp) {
    const tcpTo = anyOf(operations.map((operation) => compileOperation(operation, false)));
    const tcpWhen = conditions
      .filter((condition) => !HEADER_CONDITION.test(condition.key))
      .map(compileCondition);
    tcp = allOf([from, tcpTo, ...tcpWhen]);
  }
  return { http, tcp, principalKeys: principalKeys(sources) };
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

/** Empty list = unset = matches anything, as in Istio. */
function anyOf(predicates: readonly Predicate[]): Predicate {
  if (predicates.length === 0) return always;
  if (predicates.length === 1) return predicates[0]!;
  return (context) => {
    for (const predicate of predicates) if (predicate(context)) return true;
    return false;
  };
}

function allOf(all: readonly Predicate[]): Predicate {
  const predicates = all.filter((predicate) => predicate !== always);
  if (predicates.length === 0) return always;
  if (predicates.length === 1) return predicates[0]!;
  if (predicates.length === 2) {
    const [a, b] = predicates as [Predicate, Predicate];
    return (context) => a(context) && b(context);
  }
  return (context) => {
    for (const predicate of predicates) if (!predicate(context)) return false;
    return true;
  };
}

/** A value that may be absent (no principal over plaintext): positive lists need it, `not` lists match its absence. */
function optionalField(
  get: (context: EvaluationContext) => string | undefined,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
): Predicate[] {
  const predicates: Predicate[] = [];
  if (values?.length) {
    const match = compileStringMatcher(values);
    predicates.push((context) => {
      const value = get(context);
      return value !== undefined && match(value);
    });
  }
  if (notValues?.length) {
    const match = compileStringMatcher(notValues);
    predicates.push((context) => {
      const value = get(context);
      return value === undefined || !match(value);
    });
  }
  return predicates;
}

function stringField(
  get: (context: EvaluationContext) => string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  matcher: (patterns: readonly string[]) => StringMatcher = compileStringMatcher,
): Predicate[] {
  const predicates: Predicate[] = [];
  if (values?.length) {
    const match = matcher(values);
    predicates.push((context) => match(get(context)));
  }
  if (notValues?.length) {
    const match = matcher(notValues);
    predicates.push((context) => !match(get(context)));
  }
  return predicates;
}

function ipField(
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
): Predicate[] {
  const predicates: Predicate[] = [];
  if (values?.length) {
    const match = compileIpMatcher(values);
    predicates.push((context) => match(context.ip));
  }
  if (notValues?.length) {
    const match = compileIpMatcher(notValues);
    predicates.push((context) => !match(context.ip));
  }
  return predicates;
}

function portField(
  values: readonly (string | number)[] | undefined,
  notValues?: readonly (string | number)[],
) {
  const predicates: Predicate[] = [];
  if (values?.length) {
    const ports = new Set(values.map(Number));
    predicates.push((context) => ports.has(context.port));
  }
  if (notValues?.length) {
    const ports = new Set(notValues.map(Number));
    predicates.push((context) => !ports.has(context.port));
  }
  return predicates;
}

function compileSource(source: SourceInput): Predicate {
  return allOf([
    ...optionalField((context) => context.principal, source.principals, source.notPrincipals),
    ...optionalField((context) => context.namespace, source.namespaces, source.notNamespaces),
    ...ipField(source.ipBlocks, source.notIpBlocks),
  ]);
}

function compileOperation(operation: OperationInput, isHttp: boolean): Predicate {
  const predicates = portField(operation.ports, operation.notPorts);
  if (isHttp) {
    predicates.push(
      ...stringField((context) => context.method, operation.methods, operation.notMethods),
      ...stringField((context) => context.path, operation.paths, operation.notPaths),
      ...stringField((context) => context.host, operation.hosts, operation.notHosts, hostMatcher),
    );
  }
  return allOf(predicates);
}

/** Hosts match case-insensitively, with or without the `:port` of the Host header. */
function hostMatcher(patterns: readonly string[]): StringMatcher {
  const match = compileStringMatcher(patterns, true);
  return (host) => {
    if (match(host)) return true;
    const colon = host.lastIndexOf(':');
    return colon > 0 && !host.endsWith(']') && match(host.slice(0, colon));
  };
}

function compileCondition(condition: ConditionInput): Predicate {
  const { key, values, notValues } = condition;
  const header = HEADER_CONDITION.exec(key);
  if (header) {
    const name = header[1]!.toLowerCase();
    return allOf(
      optionalField(
        (context) => {
          const value = context.headers[name];
          return Array.isArray(value) ? value.join(',') : value;
        },
        values,
        notValues,
      ),
    );
  }
  switch (key) {
    case 'source.principal':
      return allOf(optionalField((context) => context.principal, values, notValues));
    case 'source.namespace':
      return allOf(optionalField((context) => context.namespace, values, notValues));
    case 'source.ip':
      return allOf(ipField(values, notValues));
    case 'destination.port':
      return allOf(portField(values, notValues));
    default:
      throw new Error(`condition key ${key} passed validation but has no evaluator`);
  }
}
