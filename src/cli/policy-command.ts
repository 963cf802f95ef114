import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { isMutualError, MutualError } from '../errors.ts';

import {
  type AuthorizationDecision,
  authorityProblem,
  checkPolicySet,
  compilePolicySet,
  DEFAULT_ROOT_NAMESPACE,
  diagnosticsError,
  formatDiagnostic,
  hostProblem,
  loadPolicyFiles,
  methodProblem,
  type PolicyDiagnostic,
  parseRequestTarget,
  trustDomainOf,
  type WorkloadRef,
} from '../policy/index.ts';
import { parseSpiffeId } from '../spiffe/index.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { renderFields, renderJson } from './render.ts';

export function registerPolicyCommand(program: Command, context: CliContext): void {
  const policy = program
    .command('policy')
    .description('check and explain PeerAuthentication and AuthorizationPolicy files (Istio YAML)');
  policy
    .command('check')
    .description('validate policy files and warn about traps; exit 1 if any file has errors')
    .argument('<paths...>', 'YAML files or directories of them')
    .option('--root-namespace <ns>', 'namespace whose policies apply mesh-wide', DEFAULT_ROOT_NAMESPACE)
    .option(
      '--workload <ref>',
      'a known workload, NS/APP (label app=APP) or NS:key=value,key=value; with it, selectors that match nothing are reported (repeatable)',
      collect,
      [],
    )
    .addOption(outputOption())
    .action(async (paths: string[], options: CheckOptions) => check(paths, options, context));
  policy
    .command('explain')
    .description('show the mTLS mode and the authorization decision for one connection or request, and why')
    .requiredOption('--policy-dir <dir>', 'directory of policy files')
    .option(
      '--to <ref>',
      'target workload: NS/APP (its label app=APP) or NS:key=value,key=value (all its labels, as selectors match them)',
    )
    .option('--namespace <ns>', 'namespace of the target workload (instead of --to)')
    .option('--label <k=v>', "a label of the target workload, added to --to's (repeatable)", collect, [])
    .requiredOption('--port <port>', 'destination port on the workload')
    .option('--from <principal>', 'the client, e.g. cluster.local/ns/demo/sa/web (spiffe:// optional)')
    .option('--plaintext', 'the client has no mTLS identity')
    .option('--method <method>', 'HTTP method (makes it an HTTP request; default GET)')
    .option('--path <path>', 'HTTP path (makes it an HTTP request; default /)')
    .option('--host <host>', 'HTTP Host header (makes it an HTTP request)')
    .option('--header <name=value>', 'HTTP header (repeatable; makes it an HTTP request)', collect, [])
    .option('--source-ip <ip>', 'client address, for ipBlocks rules', '127.0.0.1')
    .option(
      '--trust-domain <td>',
      "the target workload's trust domain, which policies' cluster.local/... principals name as in Istio (default: --from's, else cluster.local)",
    )
    .option('--root-namespace <ns>', 'namespace whose policies apply mesh-wide', DEFAULT_ROOT_NAMESPACE)
    .addOption(outputOption())
    .action(async (options: ExplainOptions) => explain(options, context));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface CheckOptions {
  rootNamespace: string;
  workload: string[];
  output: OutputFormat;
}

async function check(paths: string[], options: CheckOptions, context: CliContext): Promise<void> {
  const workloads =
    options.workload.length > 0 ? options.workload.map((value) => parseWorkloadArgument(value)) : undefined;
  const loaded = await loadPolicyFiles(
    paths.map((path) => resolve(context.cwd, path)),
    { rootNamespace: options.rootNamespace },
  );
  if (loaded.files.length === 0) {
    throw new MutualError('MUTUAL_POLICY_NOT_FOUND', `no .yaml or .yml files in ${paths.join(', ')}`);
  }
  const diagnostics = [
    ...loaded.diagnostics,
    ...checkPolicySet(loaded.resources, {
      rootNamespace: options.rootNamespace,
      ...(workloads ? { workloads } : {}),
    }),
  ]
    .map((diagnostic) => ({ ...diagnostic, file: relativeTo(context.cwd, diagnostic.file) }))
    .sort(byPosition);
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  const warnings = diagnostics.filter((diagnostic) => diagnostic.severity === 'warning');
  if (errors.length > 0) context.setExitCode(1);
  if (options.output === 'json') {
    context.write(
      renderJson({
        isValid: errors.length === 0,
        files: loaded.files.map((file) => relativeTo(context.cwd, file)),
        policies: loaded.resources.map((resource) => ({
          kind: resource.kind,
          id: resource.meta.id,
          file: relativeTo(context.cwd, resource.meta.position.file),
          line: resource.meta.position.line,
        })),
        errors,
        warnings,
      }),
    );
    return;
  }
  const syntaxErrorsShown = new Map<string, number>();
  for (const diagnostic of diagnostics) {
    if (diagnostic.code === 'MUTUAL_POLICY_YAML_INVALID') {
      const shown = syntaxErrorsShown.get(diagnostic.file) ?? 0;
      syntaxErrorsShown.set(diagnostic.file, shown + 1);
      if (shown >= MAX_SYNTAX_ERRORS_PER_FILE) continue;
    }
    context.write(`${formatDiagnostic(diagnostic)}\n`);
  }
  for (const [file, count] of syntaxErrorsShown) {
    if (count <= MAX_SYNTAX_ERRORS_PER_FILE) continue;
    context.write(
      `${file}: … and ${count - MAX_SYNTAX_ERRORS_PER_FILE} more YAML errors (is it a policy file? -o json lists them all)\n`,
    );
  }
  const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  context.write(
    `${diagnostics.length > 0 ? '\n' : ''}${count(loaded.files.length, 'file')}, ${count(loaded.resources.length, 'valid policy').replace('policys', 'policies')}: ${count(errors.length, 'error')}, ${count(warnings.length, 'warning')}\n`,
  );
}

/**
 * YAML errors listed per file: a file that is not YAML at all (`policy check README.md`) gave 124
 * errors of two lines each; the first few say what is wrong, the count says the rest.
 */
const MAX_SYNTAX_ERRORS_PER_FILE = 10;

function byPosition(a: PolicyDiagnostic, b: PolicyDiagnostic): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.line - b.line || a.column - b.column;
}

function relativeTo(cwd: string, file: string): string {
  return file.startsWith(`${cwd}/`) ? file.slice(cwd.length + 1) : file;
}

/**
 * `NS/APP` (label app=APP, the demo's and Linkerd's habit) or `NS:k=v,k=v`: every label, since
 * Istio's selectors match any of them (version, tier, …), not only app.
 */
function parseWorkloadArgument(value: string, flag = '--workload'): WorkloadRef {
  const usage = `write NS/APP (e.g. demo/web) or NS:key=value,key=value (e.g. demo:app=web,version=v2)`;
  const colon = value.indexOf(':');
  if (colon >= 0) {
    const namespace = value.slice(0, colon);
    const labelText = value.slice(colon + 1);
    if (namespace === '' || namespace.includes('/') || labelText === '') {
      throw new MutualError('MUTUAL_CLI_USAGE', `${flag} ${value}: ${usage}`);
    }
    checkNamespace(namespace, `${flag} ${value}:`);
    return { namespace, labels: parseLabels(labelText.split(','), `${flag} ${value}:`) };
  }
  const [namespace, app, ...rest] = value.split('/');
  if (!namespace || !app || rest.length > 0 || app.includes('=')) {
    throw new MutualError('MUTUAL_CLI_USAGE', `${flag} ${value}: ${usage}`);
  }
  checkNamespace(namespace, `${flag} ${value}:`);
  checkLabel('app', app, `${flag} ${value}:`);
  return { namespace, labels: { app }, serviceAccount: app };
}

function checkNamespace(namespace: string, where: string): void {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${where} namespace ${JSON.stringify(namespace)} is not a Kubernetes namespace name: up to 63 lower-case letters, digits or '-', starting and ending with a letter or digit`,
    );
  }
}

// Kubernetes' label syntax: a value selectors could never match is a typo, better named than
// silently matching nothing.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkLabel(key: string, value: string, where: string): void {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = key.slice(slash + 1);
  if (
    (prefix !== undefined && (!LABEL_PREFIX.test(prefix) || prefix.length > 253)) ||
    !LABEL_NAME.test(name) ||
    name.length > 63
  ) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${where} ${JSON.stringify(key)} is not a Kubernetes label key: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, optionally after a DNS prefix and '/' (e.g. version, app.kubernetes.io/name)`,
    );
  }
  if (value !== '' && (!LABEL_NAME.test(value) || value.length > 63)) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${where} ${JSON.stringify(value)} (the value of ${key}) is not a Kubernetes label value: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    );
  }
}

function parseLabels(values: readonly string[], where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of values) {
    const equals = value.indexOf('=');
    if (equals <= 0) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `${where} ${JSON.stringify(value)} is not a label: write key=value`,
      );
    }
    const key = value.slice(0, equals);
    const labelValue = value.slice(equals + 1);
    checkLabel(key, labelValue, where);
    if (key in labels && labels[key] !== labelValue) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `${where} ${key}=${labels[key]} and ${key}=${labelValue}: a workload has one value per label; give ${key} once`,
      );
    }
    labels[key] = labelValue;
  }
  return labels;
}

function parseNameValue(value: string, flag: string): [string, string] {
  const equals = value.indexOf('=');
  if (equals <= 0)
    throw new MutualError('MUTUAL_CLI_USAGE', `${flag} ${value}: write a header as name=value`);
  return [value.slice(0, equals), value.slice(equals + 1)];
}

/** `--header NAME=VALUE`, repeatable: a name given twice is a header sent twice, as the sidecar sees it. */
function parseHeaders(values: readonly string[]): Record<string, string[]> {
  const headers: Record<string, string[]> = Object.create(null);
  for (const value of values) {
    const [name, headerValue] = parseNameValue(value, '--header');
    const key = name.toLowerCase();
    headers[key] = [...(headers[key] ?? []), headerValue];
  }
  return headers;
}

interface ExplainOptions {
  policyDir: string;
  to?: string;
  namespace?: string;
  label: string[];
  port: string;
  from?: string;
  plaintext?: boolean;
  method?: string;
  path?: string;
  host?: string;
  header: string[];
  sourceIp: string;
  trustDomain?: string;
  rootNamespace: string;
  output: OutputFormat;
}

async function explain(options: ExplainOptions, context: CliContext): Promise<void> {
  const targetRef = targetWorkload(options);
  const port = Number(options.port);
  if (!/^\d+$/.test(options.port) || port < 1 || port > 65_535) {
    throw new MutualError('MUTUAL_CLI_USAGE', `--port ${options.port}: give a port number 1–65535`);
  }
  if ((options.from === undefined) === (options.plaintext !== true)) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'give exactly one of --from PRINCIPAL (an mTLS client) or --plaintext',
    );
  }
  const principal = options.from?.replace(/^spiffe:\/\//, '');
  if (principal !== undefined && !principal.includes('/')) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--from ${options.from}: write the client as TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT`,
    );
  }
  if (principal !== undefined) {
    // A peer's principal is its SPIFFE ID without the scheme: one that no certificate can carry is a typo.
    try {
      parseSpiffeId(`spiffe://${principal}`);
    } catch (error) {
      if (!isMutualError(error)) throw error;
      throw new MutualError(error.code, `--from: ${error.message}`, { cause: error });
    }
  }
  if (isIP(options.sourceIp) === 0) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--source-ip ${options.sourceIp}: give an IPv4 or IPv6 address, e.g. 10.0.0.7 or fd00::7`,
    );
  }
  const trustDomain =
    options.trustDomain ?? (principal === undefined ? undefined : trustDomainOf(`spiffe://${principal}`));
  const workload: WorkloadRef = trustDomain === undefined ? targetRef : { ...targetRef, trustDomain };
  const loaded = await loadPolicyFiles([resolve(context.cwd, options.policyDir)], {
    rootNamespace: options.rootNamespace,
  });
  // As in `check`: an empty or mistyped directory must not read as "no policies, so ALLOW".
  if (loaded.files.length === 0) {
    throw new MutualError('MUTUAL_POLICY_NOT_FOUND', `no .yaml or .yml files in ${options.policyDir}`);
  }
  const errors = loaded.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  if (errors.length > 0) throw diagnosticsError(errors);
  const policy = compilePolicySet(loaded.resources, { rootNamespace: options.rootNamespace }).forWorkload(
    workload,
  );

  const peerAuthentication = policy.explainPeerAuthentication(port);
  const isHttp =
    options.method !== undefined ||
    options.path !== undefined ||
    options.host !== undefined ||
    options.header.length > 0;
  // DISABLE: the proxy does not terminate mTLS, so no client identity reaches authorization.
  const isRefused = principal === undefined && peerAuthentication.mode === 'STRICT';
  const effectivePrincipal = peerAuthentication.mode === 'DISABLE' ? undefined : principal;
  const connection = {
    ...(effectivePrincipal === undefined ? {} : { sourcePrincipal: effectivePrincipal }),
    sourceIp: options.sourceIp,
    destinationPort: port,
  };
  // The sidecar matches, and forwards, the normalised path: /public/../admin is /admin.
  const target = parseRequestTarget(options.path ?? '/');
  if (!target.isValid) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--path ${options.path}: ${target.problem}; the sidecar answers such a request 400 without authorizing it`,
    );
  }
  // ...and answers 400, without authorizing, what it cannot read as one method and one host.
  const method = options.method ?? 'GET';
  // An absolute-form target names its host: the Host header must name the same one.
  const host =
    options.host ?? target.authority ?? `${workload.labels.app ?? 'workload'}.${workload.namespace}`;
  const refusal = isHttp
    ? (methodProblem(method) ?? authorityProblem(target.authority, host) ?? hostProblem(host))
    : undefined;
  if (refusal !== undefined) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${refusal}; the sidecar answers such a request 400 without authorizing it`,
    );
  }
  const request = isHttp
    ? {
        ...connection,
        method,
        path: `${target.path}${target.query}`,
        host,
        headers: parseHeaders(options.header),
      }
    : undefined;
  const decision: AuthorizationDecision | undefined = isRefused
    ? undefined
    : request
      ? policy.authorizeRequest(request)
      : policy.authorizeConnection(connection);

  if (options.output === 'json') {
    context.write(
      renderJson({
        workload,
        port,
        peer: { principal: principal ?? null, isMtls: principal !== undefined },
        peerAuthentication,
        request: request ?? null,
        isRefusedByMode: isRefused,
        decision: decision ?? { allowed: false, reason: 'plaintext-to-strict' },
        policies: policy.authorizationPolicies,
      }),
    );
    return;
  }
  const labels = Object.entries(workload.labels).map(([key, value]) => `${key}=${value}`);
  const list = (ids: readonly string[]) => (ids.length === 0 ? '-' : ids.join(', '));
  context.write(
    renderFields(
      [
        ['workload', `${workload.namespace}${labels.length > 0 ? ` (${labels.join(', ')})` : ''}`],
        ['port', String(port)],
        ['peer', principal === undefined ? 'plaintext (no identity)' : `${principal} (mTLS)`],
        ['mTLS mode', describeMode(peerAuthentication)],
        [
          'traffic',
          request
            ? `HTTP ${request.method} ${request.path}${options.path !== undefined && options.path !== request.path ? ` (normalised from ${options.path})` : ''} (host ${request.host})`
            : 'TCP connection',
        ],
        ['decision', describeDecision(decision, peerAuthentication.mode, principal)],
        ['audited', list(decision?.audited ?? [])],
        [
          'policies',
          `ALLOW: ${list(policy.authorizationPolicies.ALLOW)}; DENY: ${list(policy.authorizationPolicies.DENY)}; AUDIT: ${list(policy.authorizationPolicies.AUDIT)}`,
        ],
      ],
      '',
    ),
  );
}

function targetWorkload(options: ExplainOptions): WorkloadRef {
  const labels = parseLabels(options.label, '--label');
  if (options.to !== undefined) {
    const target = parseWorkloadArgument(options.to, '--to');
    if (options.namespace !== undefined && options.namespace !== target.namespace) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `--namespace ${options.namespace} contradicts --to ${options.to}`,
      );
    }
    for (const [key, value] of Object.entries(labels)) {
      const given = target.labels[key];
      if (given !== undefined && given !== value) {
        throw new MutualError(
          'MUTUAL_CLI_USAGE',
          `--label ${key}=${value} contradicts --to ${options.to} (${key}=${given}): give ${key} once`,
        );
      }
    }
    return { ...target, labels: { ...target.labels, ...labels } };
  }
  if (options.namespace === undefined) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'name the target with --to NS/APP or --to NS:key=value,key=value, or --namespace NS and --label key=value',
    );
  }
  checkNamespace(options.namespace, '--namespace:');
  return { namespace: options.namespace, labels };
}

function describeMode(explanation: { mode: string; level: string; policy?: string }): string {
  if (explanation.policy === undefined)
    return `${explanation.mode} (no PeerAuthentication sets it: Istio's default)`;
  return `${explanation.mode} (set by ${explanation.policy}, ${explanation.level} level)`;
}

function describeDecision(
  decision: AuthorizationDecision | undefined,
  mode: string,
  principal?: string,
): string {
  if (decision === undefined) {
    return 'REFUSED: plaintext to a STRICT port is closed before authorization';
  }
  const note =
    mode === 'DISABLE' && principal !== undefined ? ' (mTLS is DISABLEd here: judged as plaintext)' : '';
  if (decision.allowed) {
    if (decision.policy === undefined) return `ALLOW: no ALLOW policy applies, and no DENY matched${note}`;
    return `ALLOW by ${decision.policy} rule ${decision.rule}${note}`;
  }
  if (decision.reason === 'denied-by-policy')
    return `DENY by ${decision.policy} rule ${decision.rule}${note}`;
  return `DENY: no rule of the ALLOW policies (${decision.policy}) matched${note}`;
}
