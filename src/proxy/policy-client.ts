// `--policy-url`: the workload's policies from the destination service (GET /v1/policies?namespace=NS
// over mTLS with the proxy's SVID), followed by long poll. Each document goes through src/policy's
// parser and the set is compiled exactly as a policy directory is, so enforcement does not change.
// Fail closed: until the first set arrives the proxy is not ready and refuses inbound traffic (STRICT,
// nothing allowed); when the service is unreachable later, the last good set stays in force.
import type { Clock } from '../clock.ts';
import type { PeerAuthenticationModeName } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import { Counter, type Registry } from '../metrics/index.ts';
import {
  type AuthorizationDecision,
  compilePolicySet,
  type ExplainableWorkloadPolicy,
  formatDiagnostic,
  type PolicyResource,
  parsePolicyText,
  type WorkloadPolicy,
  type WorkloadRef,
} from '../policy/index.ts';
import type { MeshTls } from '../tls/index.ts';
import { createMeshApiClient, destinationServerId } from './mesh-api-client.ts';
import type { ProxyLog } from './proxy-log.ts';

export interface PolicyClientOptions {
  /** e.g. https://mutual-destination.mutual-system.svc:8086 */
  readonly url: string;
  /** The service's SPIFFE ID; default spiffe://<our trust domain>/ns/mutual-system/sa/destination. */
  readonly serverId?: string;
  readonly workload: WorkloadRef;
  /** The mode where no PeerAuthentication sets one (`--mode`, `--port-mode`): Istio's PERMISSIVE by default. */
  readonly defaultMode: PeerAuthenticationModeName;
  readonly defaultPortModes?: ReadonlyMap<number, PeerAuthenticationModeName>;
  readonly meshTls: () => MeshTls | undefined;
  readonly clock: Clock;
  readonly log: ProxyLog;
  readonly registry: Registry;
  /** How long each long poll asks the service to hold; default 30 s. */
  readonly watchWaitS?: number;
  /** Backoff after a failed request; default 500 ms doubling to 30 s. */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

export interface PolicyClient {
  /** The policy in force for this workload: the deny-all placeholder until the first set. */
  policy(): WorkloadPolicy;
  notReadyReason(): string | undefined;
  close(): void;
}

/** The answer as the service sends it (docs/destination.md). */
interface WireAnswer {
  readonly version: string;
  readonly rootNamespace: string;
  readonly policies: readonly unknown[];
  readonly skipped?: readonly { kind?: string; id?: string; message?: string }[];
}

const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
const FIRST_TIMEOUT_MS = 10_000;
export const NOT_LOADED_POLICY = '(policies not received yet)';

/** Before the first policy set: nothing is allowed, and plain text is refused. */
const NOT_LOADED: WorkloadPolicy = Object.freeze({
  peerAuthenticationMode: () => 'STRICT' as const,
  authorizeConnection: () => denied,
  authorizeRequest: () => denied,
});
const denied: AuthorizationDecision = Object.freeze({
  allowed: false as const,
  policy: NOT_LOADED_POLICY,
  reason: 'no-allow-match' as const,
});

export function createPolicyClient(options: PolicyClientOptions): PolicyClient {
  const { log } = options;
  const watchWaitS = options.watchWaitS ?? 30;
  const retry = options.retry ?? { initialMs: 500, maxMs: 30_000 };
  const updates = new Counter({
    name: 'mutual_proxy_policy_updates_total',
    help: 'Policy fetches from --policy-url, by result: applied (a new set in force), unchanged (long poll ended without a change), failed (the last good set stays).',
    labelNames: ['result'],
    registers: [options.registry],
  });
  const api = createMeshApiClient({
    url: options.url,
    serverId: (meshTls) => options.serverId ?? destinationServerId(meshTls),
    meshTls: options.meshTls,
    clock: options.clock,
    maxAnswerBytes: MAX_ANSWER_BYTES,
  });
  const path = `/v1/policies?namespace=${encodeURIComponent(options.workload.namespace)}`;
  let current: WorkloadPolicy | undefined;
  let version: string | undefined;
  let lastError: MutualError | undefined;
  let isClosed = false;
  let wake: (() => void) | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      wake = undefined;
    });

  function apply(answer: WireAnswer) {
    const resources: PolicyResource[] = [];
    let refused = 0;
    for (const document of answer.policies) {
      const origin = `${options.url}${path} ${describe(document)}`;
      const parsed = parsePolicyText(JSON.stringify(document, null, 2), origin, {
        rootNamespace: answer.rootNamespace,
      });
      const errors = parsed.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
      if (errors.length > 0 || parsed.resources.length !== 1) {
        // The service checked it with the same parser; a proxy of another version may disagree.
        refused++;
        log.warn('policy from the service refused by this proxy; the others apply', {
          code: 'MUTUAL_POLICY_INVALID',
          error: errors.map(formatDiagnostic).join('\n') || 'not one policy document',
        });
        continue;
      }
      resources.push(parsed.resources[0]!);
    }
    const set = compilePolicySet(resources, { rootNamespace: answer.rootNamespace });
    current = withDefaultModes(set.forWorkload(options.workload), options);
    version = answer.version;
    updates.inc({ result: 'applied' });
    log.info('policies received', {
      version,
      policies: resources.length,
      ...(refused > 0 ? { refused } : {}),
      ...(answer.skipped?.length
        ? { skippedByService: answer.skipped.map((entry) => `${entry.kind} ${entry.id}`) }
        : {}),
    });
  }

  async function run() {
    let failures = 0;
    while (!isClosed) {
      if (!options.meshTls()) {
        // The first certificate is on its way (the proxy's credential source).
        await sleep(100);
        continue;
      }
      const query =
        version === undefined ? '' : `&wait=${watchWaitS}s&version=${encodeURIComponent(version)}`;
      try {
        const timeoutMs = version === undefined ? FIRST_TIMEOUT_MS : (watchWaitS + 10) * 1000;
        const { status, text } = await api.get(`${path}${query}`, timeoutMs);
        if (status === 304) updates.inc({ result: 'unchanged' });
        else if (status === 200) apply(parseAnswer(text));
        else throw new Error(`HTTP ${status}: ${errorMessage(text)}`);
        if (lastError) log.info('policy service reachable again', { url: options.url, version });
        lastError = undefined;
        failures = 0;
      } catch (error) {
        if (isClosed) return;
        failures++;
        updates.inc({ result: 'failed' });
        const isFirst = lastError === undefined;
        lastError = new MutualError(
          'MUTUAL_DESTINATION_POLICIES_UNAVAILABLE',
          `no policies from ${options.url}${path}: ${(error as Error).message}`,
          { cause: error },
        );
        const ceiling = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(failures - 1, 16));
        const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        if (isFirst) {
          log.warn(
            current
              ? 'policy service unavailable; the last good set stays in force'
              : 'policy service unavailable; inbound traffic is refused until the first policy set',
            { code: lastError.code, error: lastError.message, retryInMs: delayMs },
          );
        }
        await sleep(delayMs);
      }
    }
  }
  void run();

  return {
    policy: () => current ?? NOT_LOADED,
    notReadyReason() {
      if (current) return undefined;
      return lastError
        ? `no policies yet: ${lastError.code}: ${lastError.message}`
        : `no policies yet from ${options.url}`;
    },
    close() {
      isClosed = true;
      wake?.();
      api.close();
    },
  };
}

/**
 * Where no PeerAuthentication decides (Istio's default), the configured `--mode` / `--port-mode`
 * applies: for `--policy-url` and `--policy-dir` alike.
 */
export function withDefaultModes(
  policy: ExplainableWorkloadPolicy,
  options: Pick<PolicyClientOptions, 'defaultMode' | 'defaultPortModes'>,
): WorkloadPolicy {
  return {
    peerAuthenticationMode(port) {
      const explained = policy.explainPeerAuthentication(port);
      if (explained.level !== 'default') return explained.mode;
      return options.defaultPortModes?.get(port) ?? options.defaultMode;
    },
    authorizeConnection: policy.authorizeConnection,
    authorizeRequest: policy.authorizeRequest,
  };
}

function parseAnswer(text: string): WireAnswer {
  const answer = JSON.parse(text) as WireAnswer;
  if (
    typeof answer?.version !== 'string' ||
    typeof answer.rootNamespace !== 'string' ||
    !Array.isArray(answer.policies)
  ) {
    throw new Error('the answer has no version, rootNamespace or policies');
  }
  return answer;
}

function errorMessage(text: string): string {
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}

function describe(document: unknown): string {
  const value = document as { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown } };
  return `${String(value?.kind)} ${String(value?.metadata?.namespace)}/${String(value?.metadata?.name)}`;
}
