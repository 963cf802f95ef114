// Checks on one schema-valid policy beyond its schema: what Mutual cannot evaluate (errors) and
// the traps of a single policy (warnings). Traps across policies live in check.ts.
import { ipBlockProblem } from './ip-block.ts';
import type { FieldPath, Report } from './parse.ts';
import type { PolicyMeta } from './resource.ts';
import type {
  AuthorizationPolicyInput,
  ConditionInput,
  PeerAuthenticationInput,
  SourceInput,
} from './schema.ts';
import { MAX_SERVICE_ACCOUNTS, serviceAccountProblem } from './service-account.ts';
import { literalWildcardNote } from './string-match.ts';
import { validateTargetRefs } from './target-ref.ts';

/**
 * Condition keys Mutual evaluates; `request.headers[name]` and Istio's
 * `request.experimental.inline.headers[name]` (a header read as a `,`-separated list) are matched
 * separately.
 */
export const CONDITION_KEYS = [
  'source.ip',
  'source.principal',
  'source.namespace',
  'source.serviceAccount',
  'destination.port',
] as const;
const UNSUPPORTED_CONDITION =
  /^(request\.auth\.|remote\.ip$|destination\.ip$|connection\.sni$|experimental\.)/;
export const HEADER_CONDITION = /^request\.(experimental\.inline\.)?headers\[([^\]]+)\]$/;

/** Istio source fields Mutual cannot evaluate: JWT request principals and X-Forwarded-For addresses. */
export const UNSUPPORTED_SOURCE_FIELDS = [
  'requestPrincipals',
  'notRequestPrincipals',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const;

/** A condition key Istio evaluates and Mutual cannot (JWT claims, remote.ip, SNI, ...). */
export function isUnsupportedConditionKey(key: string): boolean {
  return UNSUPPORTED_CONDITION.test(key);
}

/** Istio's annotation for a policy that is evaluated and logged but never enforced. */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

/** Does the annotation say dry-run, as Go's strconv.ParseBool reads it (Istio's reading)? */
export function isDryRun(annotations: unknown): boolean {
  if (typeof annotations !== 'object' || annotations === null) return false;
  const value = (annotations as Record<string, unknown>)[DRY_RUN_ANNOTATION];
  return typeof value === 'string' && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value);
}

/** An Istio path template (`/foo/{*}/bar`, `/baz/{**}`), which Mutual does not evaluate. */
export function isPathTemplate(value: string): boolean {
  return value.includes('{');
}

/** Fields that exist only in HTTP requests. */
export const HTTP_OPERATION_FIELDS = [
  'methods',
  'notMethods',
  'paths',
  'notPaths',
  'hosts',
  'notHosts',
] as const;

export function validatePeerAuthentication(
  input: PeerAuthenticationInput,
  meta: PolicyMeta,
  rootNamespace: string,
  report: Report,
): void {
  const hasSelector = Object.keys(input.spec?.selector?.matchLabels ?? {}).length > 0;
  validateSelector(input.spec?.selector, report);
  if (hasSelector && meta.namespace === rootNamespace) {
    report(
      ['spec', 'selector'],
      'warning',
      'root-namespace-selector',
      `a PeerAuthentication with a selector in the root namespace "${rootNamespace}" is ignored`,
      'Move it into the namespace of the workloads it selects, or drop the selector to make it mesh-wide.',
    );
  }
  // Istio refuses both ("mesh/namespace peer authentication cannot have port level mTLS", "port
  // level mTLS, if defined, must have at least one element"): the whole policy, not just the ports.
  if (input.spec?.portLevelMtls !== undefined && !hasSelector) {
    report(
      ['spec', 'portLevelMtls'],
      'error',
      'MUTUAL_POLICY_INVALID',
      'portLevelMtls needs a selector: a mesh- or namespace-wide PeerAuthentication cannot set port modes',
      'Add selector.matchLabels naming the workload whose ports these are, or move the ports into a workload policy (Istio refuses this one).',
      true,
    );
  } else if (input.spec?.portLevelMtls !== undefined && Object.keys(input.spec.portLevelMtls).length === 0) {
    report(
      ['spec', 'portLevelMtls'],
      'error',
      'MUTUAL_POLICY_INVALID',
      'portLevelMtls is empty',
      'List at least one port (`8080: {mode: DISABLE}`), or remove portLevelMtls.',
      true,
    );
  }
  warnIstioRootNamespace(meta, rootNamespace, report);
  warnNamespaceNotSet(input.metadata, meta, rootNamespace, report);
}

/**
 * Istio's validateWorkloadSelector: a label key that is empty or a `*` in a key or value is
 * refused (labels match exactly, so `app: web*` would select nothing); a selector without labels
 * is warned about (it selects every workload in the namespace).
 */
function validateSelector(
  selector: { matchLabels?: Record<string, string> } | undefined,
  report: Report,
): void {
  if (selector === undefined) return;
  const labels = Object.entries(selector.matchLabels ?? {});
  for (const [key, value] of labels) {
    if (key !== '' && !key.includes('*') && !value.includes('*')) continue;
    report(
      ['spec', 'selector', 'matchLabels', key],
      'error',
      'MUTUAL_POLICY_INVALID',
      key === ''
        ? `an empty label key is not supported in a selector ("=${value}")`
        : `a wildcard is not supported in a selector ("${key}=${value}"): labels match exactly`,
      'Name the exact label and value (one policy per value), or remove the selector to cover the whole namespace (Istio refuses this one).',
      true,
    );
  }
  if (labels.length === 0) {
    report(
      ['spec', 'selector'],
      'warning',
      'selector-without-labels',
      'a selector without labels selects every workload in the namespace',
      'Name the labels of the workloads meant (matchLabels: {app: web}), or remove the selector to make the policy namespace-wide on purpose.',
    );
  }
}

const ISTIO_ROOT_NAMESPACE = 'istio-system';

/**
 * Istio's pages apply much of their YAML with `kubectl apply -n NS` (the mTLS migration task's
 * mesh-wide STRICT goes to istio-system that way): pasted into a file without the namespace, such a
 * policy covers namespace `default` only, so plaintext stays welcome everywhere else.
 */
function warnNamespaceNotSet(
  metadata: { namespace?: string },
  meta: PolicyMeta,
  rootNamespace: string,
  report: Report,
): void {
  if (metadata.namespace !== undefined) return;
  report(
    ['metadata', 'name'],
    'warning',
    'namespace-not-set',
    `metadata.namespace is not set: this policy applies only to namespace "${meta.namespace}", as \`kubectl apply\` without -n would store it`,
    `Set metadata.namespace to the namespace meant (Istio's pages often give it with kubectl -n instead); ${rootNamespace} makes it mesh-wide.`,
  );
}

/** Istio YAML copied unchanged into istio-system would silently stop being mesh-wide. */
function warnIstioRootNamespace(meta: PolicyMeta, rootNamespace: string, report: Report): void {
  if (meta.namespace !== ISTIO_ROOT_NAMESPACE || rootNamespace === ISTIO_ROOT_NAMESPACE) return;
  report(
    ['metadata', 'namespace'],
    'warning',
    'istio-root-namespace',
    `"${ISTIO_ROOT_NAMESPACE}" is Istio's root namespace, not Mutual's ("${rootNamespace}"): this policy applies only to workloads in namespace ${ISTIO_ROOT_NAMESPACE}, not mesh-wide`,
    `To make it mesh-wide as in Istio, set metadata.namespace: ${rootNamespace}.`,
  );
}

export function validateAuthorizationPolicy(
  input: AuthorizationPolicyInput,
  meta: PolicyMeta,
  rootNamespace: string,
  report: Report,
): void {
  const spec = input.spec;
  warnIstioRootNamespace(meta, rootNamespace, report);
  warnNamespaceNotSet(input.metadata, meta, rootNamespace, report);
  // Istio evaluates such a policy without enforcing it; enforcing it here could cut off traffic
  // it was only meant to be tried on, and ignoring it would lose the policy without a word.
  if (isDryRun(input.metadata.annotations)) {
    report(
      ['metadata', 'annotations', DRY_RUN_ANNOTATION],
      'error',
      'MUTUAL_POLICY_UNSUPPORTED',
      `annotation ${DRY_RUN_ANNOTATION}: "${input.metadata.annotations?.[DRY_RUN_ANNOTATION]}" (dry-run) is not supported: Mutual would enforce this policy`,
      'Try the policy with `mutual policy explain --policy-dir DIR ...` (what it would decide, nothing enforced), then remove the annotation to enforce it.',
      true,
    );
  }
  if (spec !== undefined) validateTargetRefs(spec, meta, report);
  validateSelector(spec?.selector, report);
  const action = spec?.action ?? 'ALLOW';
  if (action === 'CUSTOM') {
    report(
      ['spec', 'action'],
      'error',
      'MUTUAL_POLICY_UNSUPPORTED',
      'action CUSTOM (an external authorizer) is not supported by Mutual',
      'Use ALLOW, DENY or AUDIT rules instead; Mutual has no external authorization extension.',
    );
  } else if (spec?.provider !== undefined) {
    // Istio refuses it too: "`provider` must not be with non CUSTOM action".
    report(
      ['spec', 'provider'],
      'error',
      'MUTUAL_POLICY_INVALID',
      `provider names an external authorizer, which only action CUSTOM uses; this policy's action is ${action}`,
      `Remove provider to keep this an ${action} policy (Istio refuses it as written).`,
    );
  }
  if (action === 'ALLOW' && (spec?.rules === undefined || spec.rules.length === 0)) {
    report(
      spec === undefined ? [] : ['spec'],
      'warning',
      'allow-nothing',
      'an ALLOW policy without rules allows nothing: every request to the selected workloads is denied',
      "This is Istio's deny-all idiom; if you meant allow-all, write `rules: [{}]`.",
    );
  }
  if (action === 'DENY' && (spec?.rules === undefined || spec.rules.length === 0)) {
    // Istio refuses it ("DENY action without `rules` is meaningless"): it would never match.
    report(
      spec === undefined ? [] : ['spec'],
      'error',
      'MUTUAL_POLICY_INVALID',
      'a DENY policy without rules never matches anything',
      'Add rules saying what to deny; to deny every request, write `rules: [{}]`.',
    );
  }
  for (const [ruleIndex, rule] of (spec?.rules ?? []).entries()) {
    const rulePath = ['spec', 'rules', ruleIndex];
    // Istio refuses an empty `from`/`to` list or an empty source/operation: read as "unset" they
    // would match every peer or request, widening an ALLOW to everyone.
    for (const field of ['from', 'to'] as const) {
      if (rule[field]?.length === 0) {
        report(
          [...rulePath, field],
          'error',
          'MUTUAL_POLICY_INVALID',
          `\`${field}\` must not be empty: an empty list would match ${field === 'from' ? 'every source' : 'every request'}`,
          `List at least one ${field === 'from' ? 'source' : 'operation'}, or remove \`${field}\` to match any.`,
        );
      }
    }
    for (const [index, from] of (rule.from ?? []).entries()) {
      const path = [...rulePath, 'from', index, 'source'];
      if (!Object.values(from.source).some((values) => values !== undefined && values.length > 0)) {
        report(
          path,
          'error',
          'MUTUAL_POLICY_INVALID',
          'a source must set at least one field: an empty one would match every peer',
          'Name principals, namespaces or ipBlocks (or their not- forms), or remove this entry.',
        );
      }
      validateSource(from.source, path, action, report, conditionsRequireIdentity(rule.when));
      checkServiceAccounts(from.source, path, meta, rootNamespace, report);
    }
    let httpField: string | undefined;
    for (const [index, to] of (rule.to ?? []).entries()) {
      const path = [...rulePath, 'to', index, 'operation'];
      const operation = to.operation;
      if (!Object.values(operation).some((values) => values !== undefined && values.length > 0)) {
        report(
          path,
          'error',
          'MUTUAL_POLICY_INVALID',
          'an operation must set at least one field: an empty one would match every request',
          'Name hosts, ports, methods or paths (or their not- forms), or remove this entry.',
        );
      }
      for (const field of HTTP_OPERATION_FIELDS) {
        const values = operation[field];
        if (values === undefined) continue;
        httpField ??= field;
        for (const [i, value] of values.entries()) {
          const isPaths = field === 'paths' || field === 'notPaths';
          // A template's `{*}` is not a misplaced wildcard: say only that templates are unsupported.
          if (isPaths && isPathTemplate(value)) {
            report(
              [...path, field, i],
              'error',
              'MUTUAL_POLICY_UNSUPPORTED',
              `path template "${value}" is not supported`,
              'Use an exact path, a prefix ("/api/*") or a suffix ("*.png").',
            );
          } else {
            checkPattern(value, [...path, field, i], report);
          }
          // Requests with a method not in upper case are refused (400), as Istio does.
          if ((field === 'methods' || field === 'notMethods') && value !== value.toUpperCase()) {
            report(
              [...path, field, i],
              'warning',
              'method-not-upper-case',
              `no request has the method "${value}": methods match case-sensitively and a request whose method is not in upper case is refused (400)`,
              `Write "${value.toUpperCase()}".`,
            );
          }
        }
      }
    }
    for (const [index, condition] of (rule.when ?? []).entries()) {
      const field = validateCondition(condition, [...rulePath, 'when', index], report);
      httpField ??= field;
    }
    // CUSTOM is refused above; a warning about how it would behave on TCP is noise.
    if (httpField !== undefined && action !== 'ALLOW' && action !== 'CUSTOM') {
      report(
        rulePath,
        'warning',
        'http-fields-ignored-on-tcp',
        `${action} rule uses the HTTP-only field ${httpField}: on plain TCP traffic it is ignored, so the rule matches more`,
        `Istio drops HTTP fields from ${action} rules on TCP (fail safe): on a TCP port this rule applies to every connection its other fields match. Add ports to limit it to HTTP ports.`,
      );
    }
  }
}

/** Identity fields a plaintext peer never matches: one set beside a not- field keeps it out. */
const IDENTITY_SOURCE_FIELDS = ['principals', 'namespaces', 'serviceAccounts'] as const;
const IDENTITY_CONDITION_KEYS = new Set(['source.principal', 'source.namespace', 'source.serviceAccount']);

/** Whether a rule's `when` has a condition that only a peer with an mTLS identity can meet. */
function conditionsRequireIdentity(when: readonly ConditionInput[] | undefined): boolean {
  return (when ?? []).some(
    (condition) => IDENTITY_CONDITION_KEYS.has(condition.key) && (condition.values?.length ?? 0) > 0,
  );
}

function validateSource(
  source: SourceInput,
  path: FieldPath,
  action: string,
  report: Report,
  ruleRequiresIdentity: boolean,
): void {
  for (const field of UNSUPPORTED_SOURCE_FIELDS) {
    if (source[field] !== undefined) {
      report(
        [...path, field],
        'error',
        'MUTUAL_POLICY_UNSUPPORTED',
        `${field} is not supported (Mutual has no ${field.toLowerCase().includes('request') ? 'JWT authentication' : 'X-Forwarded-For handling'})`,
        'Match the peer with principals, namespaces or ipBlocks instead.',
        true,
      );
    }
  }
  for (const field of ['principals', 'notPrincipals'] as const) {
    for (const [i, value] of (source[field] ?? []).entries()) {
      checkPattern(value, [...path, field, i], report);
      checkPrincipalForm(value, [...path, field, i], report);
    }
  }
  // Namespaces need no check: Istio reads every "*" in them as a wildcard (.*/ns/<v>/.*).
  for (const field of ['ipBlocks', 'notIpBlocks'] as const) {
    for (const [i, value] of (source[field] ?? []).entries()) checkIp(value, [...path, field, i], report);
  }
  // A plaintext peer has no principal, namespace or service account: `principals: ["*"]` beside
  // the not- field (the hint's advice), or a `when` on the peer's identity, already keeps it out.
  const requiresIdentity =
    ruleRequiresIdentity || IDENTITY_SOURCE_FIELDS.some((field) => (source[field]?.length ?? 0) > 0);
  if (
    action === 'ALLOW' &&
    !requiresIdentity &&
    (source.notPrincipals !== undefined ||
      source.notNamespaces !== undefined ||
      source.notServiceAccounts !== undefined)
  ) {
    report(
      path,
      'warning',
      'allow-negative-mtls-field',
      'an ALLOW rule with notPrincipals/notNamespaces/notServiceAccounts also matches plaintext peers, which have no principal',
      source.notServiceAccounts === undefined
        ? 'Require STRICT mTLS for the workload, or add `principals: ["*"]` so only authenticated peers match (ISTIO-SECURITY-2021-004).'
        : // principals cannot sit beside serviceAccounts in one source; a condition can.
          'Require STRICT mTLS for the workload, or add `when: [{key: source.principal, values: ["*"]}]` to the rule so only authenticated peers match (ISTIO-SECURITY-2021-004).',
    );
  }
}

/** Returns the condition key when it is HTTP-only. */
function validateCondition(condition: ConditionInput, path: FieldPath, report: Report): string | undefined {
  const key = condition.key;
  const header = HEADER_CONDITION.exec(key);
  if (header) {
    for (const field of ['values', 'notValues'] as const) {
      for (const [i, value] of (condition[field] ?? []).entries())
        checkPattern(value, [...path, field, i], report);
    }
    return key;
  }
  if (isUnsupportedConditionKey(key)) {
    report(
      [...path, 'key'],
      'error',
      'MUTUAL_POLICY_UNSUPPORTED',
      `condition key "${key}" is not supported`,
      unsupportedConditionHint(key),
    );
    return undefined;
  }
  if (!(CONDITION_KEYS as readonly string[]).includes(key)) {
    report(
      [...path, 'key'],
      'error',
      'MUTUAL_POLICY_INVALID',
      `unknown condition key "${key}"`,
      `Use one of ${CONDITION_KEYS.join(', ')}, request.headers[<name>] or request.experimental.inline.headers[<name>].`,
    );
    return undefined;
  }
  for (const [field, list] of [
    ['values', condition.values],
    ['notValues', condition.notValues],
  ] as const) {
    if (key === 'source.serviceAccount') checkServiceAccountCount(list, [...path, field], report);
    for (const [i, value] of (list ?? []).entries()) {
      const at = [...path, field, i];
      if (key === 'source.ip') checkIp(value, at, report);
      else if (key === 'destination.port') {
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65_535) {
          report(at, 'error', 'MUTUAL_POLICY_INVALID', `"${value}" is not a port number 1–65535`);
        }
      } else if (key === 'source.serviceAccount') {
        checkServiceAccount(value, at, report);
      } else if (key !== 'source.namespace') {
        checkPattern(value, at, report);
        if (key === 'source.principal') checkPrincipalForm(value, at, report);
      }
    }
  }
  return undefined;
}

function unsupportedConditionHint(key: string): string {
  if (key.startsWith('request.auth.')) {
    return "Mutual has no JWT authentication (RequestAuthentication): match the peer's mTLS identity with source.principal, source.namespace or principals instead, or remove the condition.";
  }
  if (key === 'remote.ip') {
    return "Mutual does not read X-Forwarded-For: use source.ip (the address of the connection's peer) instead.";
  }
  if (key === 'destination.ip') return 'Use destination.port, or select the workload with selector.';
  if (key === 'connection.sni') {
    return "Mutual does not match the client's TLS server name: select the workload with selector, or match the HTTP Host with hosts.";
  }
  return 'Envoy filter metadata does not exist in Mutual: remove the condition.';
}

/** Istio accepts a "*" that is not a wildcard and reads it literally: so does Mutual, with a word. */
function checkPattern(value: string, path: FieldPath, report: Report): void {
  const note = literalWildcardNote(value);
  if (note === undefined) return;
  report(
    path,
    'warning',
    'wildcard-read-literally',
    note,
    'Only "*" alone, "prefix*" and "*suffix" are wildcards; list the values meant, or use a prefix or suffix.',
  );
}

function checkIp(value: string, path: FieldPath, report: Report): void {
  const problem = ipBlockProblem(value);
  if (problem) report(path, 'error', 'MUTUAL_POLICY_INVALID', problem);
}

function checkPrincipalForm(value: string, path: FieldPath, report: Report): void {
  if (value.startsWith('spiffe://')) {
    report(
      path,
      'warning',
      'principal-not-istio-form',
      `principal "${value}" starts with spiffe:// and will never match`,
      `Write principals as Istio does, without the scheme: "${value.slice('spiffe://'.length)}".`,
    );
  } else if (
    value !== '*' &&
    !value.startsWith('*') &&
    !value.endsWith('*') &&
    !/^[^/]+\/ns\/[^/]+\/sa\/[^/]+$/.test(value)
  ) {
    report(
      path,
      'warning',
      'principal-not-istio-form',
      `principal "${value}" is not of the form <trust-domain>/ns/<namespace>/sa/<service-account>`,
      'Write it like cluster.local/ns/demo/sa/web, or use a "*" prefix/suffix match.',
    );
  }
}

/**
 * `serviceAccounts` / `notServiceAccounts` as Istio validates them: not with principals or
 * namespaces in the same source, at most 16 values, each `<namespace>/<name>` or `<name>`.
 */
function checkServiceAccounts(
  source: SourceInput,
  path: FieldPath,
  meta: PolicyMeta,
  rootNamespace: string,
  report: Report,
): void {
  const accountField = (['serviceAccounts', 'notServiceAccounts'] as const).find(
    (field) => (source[field]?.length ?? 0) > 0,
  );
  if (accountField === undefined) return;
  const identityField = (['principals', 'notPrincipals', 'namespaces', 'notNamespaces'] as const).find(
    (field) => (source[field]?.length ?? 0) > 0,
  );
  if (identityField !== undefined) {
    report(
      [...path, accountField],
      'error',
      'MUTUAL_POLICY_INVALID',
      `${accountField} cannot be set with ${identityField} in the same source (Istio refuses it)`,
      `Put them in two entries of \`from\` (either one then matches), or write the service accounts as principals: "<namespace>/<name>" is the principal "cluster.local/ns/<namespace>/sa/<name>".`,
      true,
    );
  }
  for (const field of ['serviceAccounts', 'notServiceAccounts'] as const) {
    checkServiceAccountCount(source[field], [...path, field], report);
    for (const [i, value] of (source[field] ?? []).entries()) {
      checkServiceAccount(value, [...path, field, i], report);
      if (!value.includes('/') && meta.namespace === rootNamespace) {
        report(
          [...path, field, i],
          'warning',
          'service-account-in-root-namespace',
          `"${value}" without a namespace means ${rootNamespace}/${value} (the policy's namespace), in every namespace this mesh-wide policy applies to`,
          `Write "<namespace>/${value}" to name a service account of another namespace.`,
        );
      }
    }
  }
}

function checkServiceAccountCount(
  values: readonly string[] | undefined,
  path: FieldPath,
  report: Report,
): void {
  if ((values?.length ?? 0) <= MAX_SERVICE_ACCOUNTS) return;
  report(
    path,
    'error',
    'MUTUAL_POLICY_INVALID',
    `${values!.length} service accounts; Istio allows at most ${MAX_SERVICE_ACCOUNTS} in one list`,
    'Split them over several entries of `from` (each matches on its own), or match a whole namespace with namespaces.',
  );
}

function checkServiceAccount(value: string, path: FieldPath, report: Report): void {
  const problem = serviceAccountProblem(value);
  if (problem === undefined) return;
  const isPrincipal = /^[^/]+\/ns\/[^/]+\/sa\/[^/]+$/.test(value);
  report(
    path,
    'error',
    'MUTUAL_POLICY_INVALID',
    problem,
    value.includes('*')
      ? 'List each <namespace>/<service-account>, or use namespaces: [<ns>] for a whole namespace, or principals: ["cluster.local/ns/<ns>/sa/<prefix>*"] for a prefix.'
      : isPrincipal
        ? `That is a principal: write "${value.split('/')[2]}/${value.split('/')[4]}" here, or move it to principals.`
        : "Write <namespace>/<service-account> (e.g. demo/web), or just <service-account> for one in the policy's own namespace.",
  );
}
