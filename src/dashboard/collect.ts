// One look at the running mesh: runtime.json, every sidecar's /metrics and /identity, the identity
// service's /metrics (and, when it reports no issuer, the CA certificates it reads from disk) and
// each workload's effective peer-authentication mode. Never throws for a part that does not
// answer: the part is recorded as unreachable with why.
import type { Clock } from '../clock.ts';
import {
  buildEdges,
  type Edge,
  fetchProxyIdentity,
  httpGet,
  type MeshRuntime,
  meshPaths,
  type ProxyIdentity,
  type ProxySamples,
  parsePrometheusText,
  type Sample,
  scrapeProxies,
  tryReadRuntime,
} from '../mesh/index.ts';
import {
  compilePolicySet,
  loadPolicyFiles,
  type PeerAuthenticationExplanation,
  type PolicyDiagnostic,
} from '../policy/index.ts';
import { type CaFileReader, type CaFiles, createCaFileReader } from './ca-files.ts';

export interface WorkloadIdentity {
  readonly service: string;
  readonly identity: ProxyIdentity | undefined;
  /** The answer's HTTP status and Date header (`mutual check` compares the clocks). */
  readonly status?: number;
  readonly date?: string | undefined;
  readonly error: string | undefined;
}

export interface WorkloadModes {
  readonly service: string;
  /** `policy-dir` when the sidecar watches policy files, `flag` for a fixed --mode. */
  readonly source: 'policy-dir' | 'flag' | 'unknown';
  readonly ports: ReadonlyArray<{ port: number; appPort: number } & PeerAuthenticationExplanation>;
  readonly authorizationPolicies: Readonly<Record<'ALLOW' | 'DENY' | 'AUDIT', readonly string[]>>;
  readonly error: string | undefined;
}

export interface Snapshot {
  readonly atMs: number;
  readonly stateDir: string;
  /** Undefined when no mesh runs from the state directory (no runtime.json). */
  readonly runtime: MeshRuntime | undefined;
  readonly proxies: readonly ProxySamples[];
  readonly unreachable: ReadonlyArray<{ service: string; error: string }>;
  readonly edges: readonly Edge[];
  readonly identities: readonly WorkloadIdentity[];
  readonly identityService: {
    samples: readonly Sample[];
    error: string | undefined;
    /** The issuer in force, from its admin /ca (its /metrics names no fingerprint); undefined if /ca did not say. */
    issuerFingerprint?: string;
  };
  /**
   * The issuer and trust anchors on disk, read only when the identity service reports no issuer
   * (it does not answer, or its /metrics lacks the sample): what the Certificates tab shows then.
   */
  readonly caFiles: CaFiles | undefined;
  readonly modes: readonly WorkloadModes[];
}

export async function collectSnapshot(
  stateDir: string,
  deps: { clock: Clock; timeoutMs?: number; caFiles?: CaFileReader },
) {
  const timeoutMs = deps.timeoutMs ?? 1500;
  const atMs = deps.clock.now();
  const runtime = await tryReadRuntime(meshPaths(stateDir));
  if (!runtime) {
    return {
      atMs,
      stateDir,
      runtime,
      proxies: [],
      unreachable: [],
      edges: [],
      identities: [],
      identityService: { samples: [], error: 'no mesh is running' },
      caFiles: undefined,
      modes: [],
    } satisfies Snapshot;
  }
  const [scrape, identities, identityService, modes] = await Promise.all([
    scrapeProxies(runtime, timeoutMs),
    Promise.all(
      runtime.services.map(async (service): Promise<WorkloadIdentity> => {
        try {
          const { identity, status, date } = await fetchProxyIdentity(service, timeoutMs);
          return { service: service.name, identity, status, date, error: undefined };
        } catch (error) {
          return { service: service.name, identity: undefined, error: (error as Error).message };
        }
      }),
    ),
    scrapeIdentityService(runtime, timeoutMs),
    effectiveModes(runtime),
  ]);
  const hasIssuer = identityService.samples.some((sample) => sample.name === ISSUER_EXPIRY);
  const caFiles = hasIssuer
    ? undefined
    : await (deps.caFiles ?? createCaFileReader()).read(runtime, stateDir);
  return {
    atMs,
    stateDir,
    runtime,
    proxies: scrape.proxies,
    unreachable: scrape.unreachable,
    edges: buildEdges(runtime, scrape.proxies),
    identities,
    identityService,
    caFiles,
    modes,
  } satisfies Snapshot;
}

const ISSUER_EXPIRY = 'mutual_identity_issuer_expiry_timestamp_seconds';

async function scrapeIdentityService(runtime: MeshRuntime, timeoutMs: number) {
  try {
    const [answer, issuerFingerprint] = await Promise.all([
      httpGet(`${runtime.identity.adminUrl}/metrics`, timeoutMs),
      issuerFingerprintOf(runtime, timeoutMs),
    ]);
    if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}`);
    return { samples: parsePrometheusText(answer.body), error: undefined, issuerFingerprint };
  } catch (error) {
    return { samples: [], error: (error as Error).message };
  }
}

/** The first 16 hex of the issuer's SHA-256 (as the anchors' metric label), from /ca; undefined if it does not say. */
async function issuerFingerprintOf(runtime: MeshRuntime, timeoutMs: number): Promise<string | undefined> {
  try {
    const answer = await httpGet(`${runtime.identity.adminUrl}/ca`, timeoutMs);
    if (answer.status !== 200) return undefined;
    const fingerprint = (JSON.parse(answer.body) as { issuer?: { fingerprintSha256?: unknown } }).issuer
      ?.fingerprintSha256;
    return typeof fingerprint === 'string' && /^[0-9a-f]{16,}$/.test(fingerprint)
      ? fingerprint.slice(0, 16)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The flag value after `name` in a recorded argv. */
function flag(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at === -1 ? undefined : argv[at + 1];
}

/** The sidecars' answer to a policy directory with errors, as `mutual policy check` names them. */
function refusedPolicyFiles(dir: string, errors: readonly PolicyDiagnostic[]): Error {
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return new Error(
    `the sidecars refuse the policy files in ${dir} and keep the last good set, whose modes are not known here: ` +
      `${first.file}:${first.line}:${first.column}: ${first.message}${more}. ` +
      `Fix the files (\`mutual policy check ${dir}\`); the sidecars load them once they are valid`,
  );
}

/** What each sidecar enforces, from the flags it was started with and the policy files it watches. */
async function effectiveModes(runtime: MeshRuntime): Promise<WorkloadModes[]> {
  const dirs = new Set(runtime.services.flatMap((service) => flag(service.proxy.argv, '--policy-dir') ?? []));
  const sets = new Map<string, ReturnType<typeof compilePolicySet> | Error>();
  await Promise.all(
    [...dirs].map(async (dir) => {
      try {
        const loaded = await loadPolicyFiles([dir]);
        const errors = loaded.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
        // The sidecars refuse such a set whole and keep the last good one, which is not on disk:
        // the files' valid part would show changes as made that are not (a STRICT not enforced).
        if (errors.length > 0) sets.set(dir, refusedPolicyFiles(dir, errors));
        else sets.set(dir, compilePolicySet(loaded.resources));
      } catch (error) {
        sets.set(dir, new Error(`cannot read ${dir}: ${(error as Error).message}`));
      }
    }),
  );
  const none = { ALLOW: [], DENY: [], AUDIT: [] };
  return runtime.services.map((service): WorkloadModes => {
    const dir = flag(service.proxy.argv, '--policy-dir');
    // Sidecars match port modes against the declared port (--policy-port in a loopback mesh).
    const ports = (explain: (port: number) => PeerAuthenticationExplanation) =>
      service.ports.map(({ port, appPort }) => ({ port, appPort, ...explain(port) }));
    if (dir === undefined) {
      const mode = flag(service.proxy.argv, '--mode');
      if (mode !== 'STRICT' && mode !== 'PERMISSIVE' && mode !== 'DISABLE') {
        return {
          service: service.name,
          source: 'unknown',
          ports: [],
          authorizationPolicies: none,
          error: 'no --mode or --policy-dir recorded',
        };
      }
      return {
        service: service.name,
        source: 'flag',
        ports: ports(() => ({ mode, level: 'mesh' })),
        authorizationPolicies: none,
        error: undefined,
      };
    }
    const set = sets.get(dir);
    if (set === undefined || set instanceof Error) {
      return {
        service: service.name,
        source: 'policy-dir',
        ports: [],
        authorizationPolicies: none,
        error: set?.message ?? `cannot read ${dir}`,
      };
    }
    const policy = set.forWorkload({
      namespace: service.namespace,
      serviceAccount: service.serviceAccount,
      labels: service.labels,
    });
    return {
      service: service.name,
      source: 'policy-dir',
      ports: ports((port) => policy.explainPeerAuthentication(port)),
      authorizationPolicies: policy.authorizationPolicies,
      error: undefined,
    };
  });
}
