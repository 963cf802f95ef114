// YAML text → validated policy resources plus diagnostics (errors and per-policy warnings), each
// with file:line:column. Multi-document files; empty documents are skipped. Never throws for bad
// input: the caller decides whether errors refuse the set.
import { type Document, isMap, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { errorCatalog } from '../errors.ts';
import { duplicateKeys, LINEAR_KEYS, toJsOrProblem, type YamlProblem } from '../yaml/index.ts';
import { closestName } from './closest-name.ts';
import type { PolicyDiagnostic, SourcePosition } from './diagnostic.ts';
import {
  type AuthorizationPolicyResource,
  DEFAULT_NAMESPACE,
  DEFAULT_ROOT_NAMESPACE,
  type PeerAuthenticationResource,
  type PolicyMeta,
  type PolicyResource,
} from './resource.ts';
import { validateAuthorizationPolicy, validatePeerAuthentication } from './rules-check.ts';
import {
  type AuthorizationPolicyInput,
  authorizationPolicySchema,
  type MtlsMode,
  type PeerAuthenticationInput,
  POLICY_KINDS,
  peerAuthenticationSchema,
} from './schema.ts';

export interface ParseOptions {
  /** Namespace whose policies apply mesh-wide (default `mutual-system`). */
  readonly rootNamespace?: string;
}

export interface ParseResult {
  readonly resources: readonly PolicyResource[];
  readonly diagnostics: readonly PolicyDiagnostic[];
}

export type FieldPath = readonly (string | number)[];

/** Reports a problem at a field of the current document; `key` points at a map key instead of its value. */
export type Report = (
  path: FieldPath,
  severity: 'error' | 'warning',
  code: string,
  message: string,
  hint?: string,
  isKey?: boolean,
) => void;

export function parsePolicyText(text: string, file: string, options: ParseOptions = {}): ParseResult {
  const lineCounter = new LineCounter();
  const resources: PolicyResource[] = [];
  const diagnostics: PolicyDiagnostic[] = [];
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, ...LINEAR_KEYS });
  const docs = Array.isArray(documents) ? documents : [];
  for (const doc of docs) {
    const at = (offset: number): SourcePosition => {
      const { line, col } = lineCounter.linePos(offset);
      return { file, line, column: col };
    };
    const problems: YamlProblem[] =
      doc.errors.length > 0
        ? doc.errors.map((error) => ({
            offset: error.pos[0],
            message: error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
          }))
        : duplicateKeys(doc);
    const js = problems.length > 0 ? undefined : toJsOrProblem(doc);
    if (js !== undefined && 'problem' in js) problems.push(js.problem);
    if (problems.length > 0) {
      for (const problem of problems) {
        diagnostics.push({
          ...at(problem.offset),
          severity: 'error',
          code: 'MUTUAL_POLICY_YAML_INVALID',
          message: problem.message,
          hint: errorCatalog.MUTUAL_POLICY_YAML_INVALID.action,
        });
      }
      continue;
    }
    const value: unknown = (js as { value: unknown }).value;
    if (value === null || value === undefined) continue;
    const parsed = parsePolicyValue(value, (path, isKey) => at(offsetOf(doc, path, isKey)), options);
    resources.push(...parsed.resources);
    diagnostics.push(...parsed.diagnostics);
  }
  return { resources, diagnostics };
}

/** Where a field of a document is: its position in the source, or for an object with none, the object's. */
export type Locate = (path: FieldPath, isKey?: boolean) => SourcePosition;

/**
 * One document's value (a YAML document's, or an API object as it is) → its policy, if valid, and
 * its diagnostics, each placed by `locate` and naming the field path in its message.
 */
export function parsePolicyValue(value: unknown, locate: Locate, options: ParseOptions = {}): ParseResult {
  const rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const diagnostics: PolicyDiagnostic[] = [];
  let policyId: string | undefined;
  const report: Report = (path, severity, code, message, hint, isKey) => {
    diagnostics.push({
      ...locate(path, isKey),
      severity,
      code,
      ...(policyId === undefined ? {} : { policy: policyId }),
      message: path.length > 0 ? `${formatPath(path)}: ${message}` : message,
      hint: hint ?? (code in errorCatalog ? errorCatalog[code as keyof typeof errorCatalog].action : ''),
    });
  };
  const kind =
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as { kind?: unknown }).kind
      : undefined;
  if (kind !== 'PeerAuthentication' && kind !== 'AuthorizationPolicy') {
    report(
      kind === undefined ? [] : ['kind'],
      'error',
      'MUTUAL_POLICY_INVALID',
      kind === undefined
        ? 'not a policy: a document needs apiVersion, kind, metadata and spec'
        : `kind ${JSON.stringify(kind)} is not a policy kind`,
      `Policy files hold only ${POLICY_KINDS.join(' and ')} documents; move other resources elsewhere.`,
    );
    return { resources: [], diagnostics };
  }
  const raw = value as { metadata?: { name?: unknown; namespace?: unknown } };
  if (typeof raw.metadata?.name === 'string') {
    policyId = `${typeof raw.metadata.namespace === 'string' ? raw.metadata.namespace : DEFAULT_NAMESPACE}/${raw.metadata.name}`;
  }
  const schema = kind === 'PeerAuthentication' ? peerAuthenticationSchema : authorizationPolicySchema;
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) reportIssue(issue, report);
    return { resources: [], diagnostics };
  }
  const meta = metaOf(parsed.data.metadata, locate([]));
  policyId = meta.id;
  const resource =
    parsed.data.kind === 'PeerAuthentication'
      ? peerAuthentication(parsed.data as PeerAuthenticationInput, meta, rootNamespace, report)
      : authorizationPolicy(parsed.data as AuthorizationPolicyInput, meta, rootNamespace, report);
  const hasErrors = diagnostics.some((diagnostic) => diagnostic.severity === 'error');
  return { resources: hasErrors ? [] : [resource], diagnostics };
}

function peerAuthentication(
  input: PeerAuthenticationInput,
  meta: PolicyMeta,
  rootNamespace: string,
  report: Report,
): PeerAuthenticationResource {
  validatePeerAuthentication(input, meta, rootNamespace, report);
  const portModes = new Map<number, MtlsMode>();
  for (const [port, mtls] of Object.entries(input.spec?.portLevelMtls ?? {})) {
    portModes.set(Number(port), mtls.mode ?? 'UNSET');
  }
  return {
    kind: 'PeerAuthentication',
    meta,
    selector: selectorOf(input.spec?.selector),
    mode: input.spec?.mtls?.mode ?? 'UNSET',
    portModes,
  };
}

function authorizationPolicy(
  input: AuthorizationPolicyInput,
  meta: PolicyMeta,
  rootNamespace: string,
  report: Report,
): AuthorizationPolicyResource {
  validateAuthorizationPolicy(input, meta, rootNamespace, report);
  const action = input.spec?.action ?? 'ALLOW';
  return {
    kind: 'AuthorizationPolicy',
    meta,
    selector: selectorOf(input.spec?.selector),
    action: action === 'CUSTOM' ? 'DENY' : action,
    rules: input.spec?.rules ?? [],
  };
}

function selectorOf(selector: { matchLabels?: Record<string, string> } | undefined) {
  const labels = selector?.matchLabels;
  return labels === undefined || Object.keys(labels).length === 0 ? undefined : labels;
}

function metaOf(metadata: PeerAuthenticationInput['metadata'], position: SourcePosition): PolicyMeta {
  const namespace = metadata.namespace ?? DEFAULT_NAMESPACE;
  const timestamp = metadata.creationTimestamp;
  return {
    name: metadata.name,
    namespace,
    id: `${namespace}/${metadata.name}`,
    creationTimestampMs: timestamp === undefined ? undefined : new Date(timestamp).getTime(),
    position,
  };
}

function reportIssue(issue: z.core.$ZodIssue, report: Report): void {
  const path = issue.path.filter((part): part is string | number => typeof part !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    // One problem per field, each at its own line and with the field meant.
    const allowed = /allowed here: ([^)]*)\)/.exec(issue.message)?.[1]?.split(', ') ?? [];
    for (const key of issue.keys) {
      const meant = closestName(key, allowed);
      const didYouMean = meant === undefined ? '' : `did you mean "${meant}"? `;
      report(
        [...path, key],
        'error',
        'MUTUAL_POLICY_INVALID',
        `unknown field "${key}" (${didYouMean}allowed here: ${allowed.join(', ')})`,
        `${meant === undefined ? 'Remove the field or fix its spelling: ' : `Did you mean "${meant}"? `}Mutual refuses unknown fields instead of ignoring them.`,
        true,
      );
    }
    return;
  }
  if (issue.code === 'invalid_key') {
    // zod says only "Invalid key in record"; the key's own problem is the one worth reading.
    const inner = issue.issues.map((inside) => inside.message).join('; ');
    report(path, 'error', 'MUTUAL_POLICY_INVALID', inner);
    return;
  }
  const message = issue.message
    .replace(/^Invalid input: expected (\w+), received undefined$/, 'missing ($1 required)')
    .replace(
      /^Invalid input: expected (\w+), received null$/,
      'is empty (a key with no value); give it a value ($1) or remove the key',
    );
  report(path, 'error', 'MUTUAL_POLICY_INVALID', message);
}

export function formatPath(path: FieldPath): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? part : `.${part}`;
  }
  return text;
}

/** The source offset of the deepest node along `path` that exists in the document. */
function offsetOf(doc: Document, path: FieldPath, isKey = false): number {
  let node: unknown = doc.contents;
  let offset = doc.contents?.range?.[0] ?? 0;
  for (const [index, part] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
      if (!pair) break;
      const isLast = index === path.length - 1;
      const target = isLast && isKey ? pair.key : (pair.value ?? pair.key);
      offset = (target as { range?: [number] }).range?.[0] ?? offset;
      node = target;
    } else if (isSeq(node)) {
      const item = node.items[Number(part)];
      if (!item) break;
      offset = (item as { range?: [number] }).range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}
