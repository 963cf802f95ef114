// Istio's authorization order for one workload: any DENY match → deny; no ALLOW policy → allow;
// an ALLOW match → allow; otherwise deny. AUDIT rules are evaluated and reported, never decide.
// Rules are indexed by the exact principal they require, so a request only runs the rules that
// can match its peer (plus those that do not name one). A path an app could read two ways (an
// encoded slash, `;parameters`) must be allowed under both readings.
import { otherPathReading } from './request-path.ts';
import type { AuthorizationAction } from './resource.ts';
import { type CompiledRule, type EvaluationContext, matchRule, type RuleData } from './rule-compile.ts';
import type { AuthorizationDecision, ConnectionAttributes, RequestAttributes } from './types.ts';

/** A compiled policy: its id, action and rules in file order. */
export interface CompiledPolicy {
  readonly id: string;
  readonly action: AuthorizationAction;
  readonly rules: readonly CompiledRule[];
}

interface IndexedRule {
  readonly policy: string;
  readonly rule: number;
  readonly order: number;
  readonly match: RuleData;
}

/** The rules of one action for one transport, indexed by principal. */
class RuleIndex {
  private readonly byPrincipal = new Map<string, readonly IndexedRule[]>();
  private readonly unkeyed: readonly IndexedRule[];

  constructor(policies: readonly CompiledPolicy[], transport: 'http' | 'tcp') {
    const unkeyed: IndexedRule[] = [];
    const keyed = new Map<string, IndexedRule[]>();
    let order = 0;
    for (const policy of policies) {
      for (const [index, rule] of policy.rules.entries()) {
        const match = rule[transport];
        if (match === undefined) continue;
        const entry = { policy: policy.id, rule: index, order: order++, match };
        if (rule.principalKeys === undefined) {
          unkeyed.push(entry);
          continue;
        }
        for (const key of new Set(rule.principalKeys)) {
          const list = keyed.get(key) ?? [];
          list.push(entry);
          keyed.set(key, list);
        }
      }
    }
    this.unkeyed = unkeyed;
    for (const [key, list] of keyed) {
      this.byPrincipal.set(
        key,
        [...list, ...unkeyed].sort((a, b) => a.order - b.order),
      );
    }
  }

  /** The first rule (in policy order) that matches, if any. */
  find(context: EvaluationContext): IndexedRule | undefined {
    const rules =
      context.principal === undefined
        ? this.unkeyed
        : (this.byPrincipal.get(context.principal) ?? this.unkeyed);
    for (let i = 0; i < rules.length; i++) if (matchRule(rules[i]!.match, context)) return rules[i];
    return undefined;
  }

  /** Every policy with a matching rule. */
  matchingPolicies(context: EvaluationContext): string[] {
    const rules =
      context.principal === undefined
        ? this.unkeyed
        : (this.byPrincipal.get(context.principal) ?? this.unkeyed);
    const policies: string[] = [];
    for (const rule of rules) {
      if (!policies.includes(rule.policy) && matchRule(rule.match, context)) policies.push(rule.policy);
    }
    return policies;
  }
}

interface TransportIndexes {
  readonly deny: RuleIndex;
  readonly allow: RuleIndex;
  readonly audit: RuleIndex | undefined;
}

export interface Authorizer {
  authorizeConnection(attributes: ConnectionAttributes): AuthorizationDecision;
  authorizeRequest(attributes: RequestAttributes): AuthorizationDecision;
}

/** Builds the evaluator for one workload from the policies that apply to it (sorted by id). */
export function createAuthorizer(policies: readonly CompiledPolicy[]): Authorizer {
  const of = (action: AuthorizationAction) => policies.filter((policy) => policy.action === action);
  const allowIds = of('ALLOW').map((policy) => policy.id);
  const hasAllow = allowIds.length > 0;
  // One stable name per workload (a metric label and a response header): at most three ids.
  const noAllowMatch =
    allowIds.length <= 3
      ? allowIds.join(',')
      : `${allowIds.slice(0, 2).join(',')},+${allowIds.length - 2} more`;
  const hasAudit = of('AUDIT').length > 0;
  const build = (transport: 'http' | 'tcp'): TransportIndexes => ({
    deny: new RuleIndex(of('DENY'), transport),
    allow: new RuleIndex(of('ALLOW'), transport),
    audit: hasAudit ? new RuleIndex(of('AUDIT'), transport) : undefined,
  });
  const http = build('http');
  const tcp = build('tcp');
  const decide = (indexes: TransportIndexes, context: EvaluationContext): AuthorizationDecision => {
    const audited = indexes.audit?.matchingPolicies(context);
    const auditField = audited !== undefined && audited.length > 0 ? { audited } : undefined;
    const deny = indexes.deny.find(context);
    if (deny !== undefined) {
      return {
        allowed: false,
        policy: deny.policy,
        rule: deny.rule,
        reason: 'denied-by-policy',
        ...auditField,
      };
    }
    if (!hasAllow) return auditField === undefined ? ALLOWED : { allowed: true, ...auditField };
    const allow = indexes.allow.find(context);
    if (allow !== undefined) return { allowed: true, policy: allow.policy, rule: allow.rule, ...auditField };
    return { allowed: false, policy: noAllowMatch, reason: 'no-allow-match', ...auditField };
  };
  return {
    authorizeConnection: (attributes) => decide(tcp, connectionContext(attributes)),
    authorizeRequest: (attributes) => {
      const context = requestContext(attributes);
      const decision = decide(http, context);
      const other = decision.allowed ? otherPathReading(context.path) : undefined;
      if (other === undefined) return decision;
      const otherDecision = decide(http, { ...context, path: other });
      return otherDecision.allowed ? decision : otherDecision;
    },
  };
}

const ALLOWED: AuthorizationDecision = Object.freeze({ allowed: true });

/** The principal as policies name it: without `spiffe://`; undefined over plaintext. */
function principalOf(sourcePrincipal: string | undefined): string | undefined {
  if (sourcePrincipal === undefined || sourcePrincipal === '') return undefined;
  return sourcePrincipal.startsWith('spiffe://') ? sourcePrincipal.slice(9) : sourcePrincipal;
}

const NO_HEADERS = Object.freeze({});

function connectionContext(attributes: ConnectionAttributes): EvaluationContext {
  return {
    principal: principalOf(attributes.sourcePrincipal),
    ip: attributes.sourceIp,
    port: attributes.destinationPort,
    method: '',
    path: '',
    target: '',
    rawHost: '',
    host: '',
    hostname: undefined,
    headers: NO_HEADERS,
  };
}

function requestContext(attributes: RequestAttributes): EvaluationContext {
  const query = attributes.path.indexOf('?');
  const { host, hostname } = splitHost(attributes.host);
  return {
    principal: principalOf(attributes.sourcePrincipal),
    ip: attributes.sourceIp,
    port: attributes.destinationPort,
    method: attributes.method,
    path: query < 0 ? attributes.path : attributes.path.slice(0, query),
    target: attributes.path,
    rawHost: attributes.host,
    host,
    hostname,
    headers: attributes.headers,
  };
}

/** The host as `hosts` match it: with its `:port` and without (when it has one), no trailing dot. */
function splitHost(value: string): { host: string; hostname: string | undefined } {
  const colon = value.lastIndexOf(':');
  const hasPort = colon > 0 && !value.endsWith(']');
  let name = hasPort ? value.slice(0, colon) : value;
  // `admin.internal.` is the fully qualified form of `admin.internal`: the same host to DNS and apps.
  if (name.endsWith('.')) name = name.slice(0, -1);
  return hasPort
    ? { host: `${name}${value.slice(colon)}`, hostname: name }
    : { host: name, hostname: undefined };
}
