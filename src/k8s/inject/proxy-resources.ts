// The proxy container's resources: the defaults, and the one check of every value that sets them
// (the injector's flags, `mutual install`'s, a pod's config.mutual.dev/proxy-* annotations).
//
// Sized from our own measurements (bench/results/proxy-latest.md, "Memory"): an idle sidecar is
// ~92 MB RSS (88Mi), one that has carried load ~230 MB (220Mi).
//   - memory request 128Mi: covers the idle proxy. Below its usage a pod is first in line when the
//     kubelet evicts under node memory pressure, and the kernel's OOM score favours it too.
//   - memory limit 1Gi (Istio's): over 4x the loaded RSS. Node sizes its heap from the cgroup
//     limit, but RSS is more than heap: under ~512Mi a busy proxy risks the OOM killer, and under
//     128Mi it cannot even idle, so that is refused outright.
//   - CPU request 100m, limit 2 (Istio's): the proxy is one event-loop thread plus V8's GC helpers,
//     so a 2-CPU CFS quota is never what slows it, yet a namespace whose ResourceQuota counts
//     limits.cpu / limits.memory admits the pod without flags.
// A request above its limit is refused (the API server would refuse the pod anyway, later and
// less clearly).

/** The proxy container's resources. Limits are optional only for the flags' and annotations' partial sets. */
export interface ProxyResources {
  readonly cpuRequest: string;
  readonly memoryRequest: string;
  readonly cpuLimit?: string;
  readonly memoryLimit?: string;
}

export type ProxyResourceField = keyof ProxyResources;

export const DEFAULT_PROXY_RESOURCES: Required<ProxyResources> = {
  cpuRequest: '100m',
  memoryRequest: '128Mi',
  cpuLimit: '2',
  memoryLimit: '1Gi',
};

/** Below this the proxy is OOM-killed before it has served anything (idle RSS ~92 MB). */
export const MIN_PROXY_MEMORY_LIMIT = '128Mi';
/** More CPUs than any node has: "500M" (500 million CPUs) written for 500m. */
const MAX_CPUS = 1024n;
/** The container runtime takes memory in bytes as a signed 64-bit number. */
const MAX_MEMORY_BYTES = 2n ** 63n - 1n;

const NANO = 1_000_000_000n;
const DECIMAL_SUFFIX: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_SUFFIX: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
/** Kubernetes `resource.Quantity`: sign, digits with an optional fraction, then a suffix or an exponent. */
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

export function isQuantity(text: string): boolean {
  return QUANTITY.test(text);
}

/**
 * The quantity in billionths of its unit (nano-CPUs, nano-bytes), rounded up as Kubernetes rounds;
 * undefined when it is not a quantity, `negative` for a negative one, Infinity-like `huge` past 10^40.
 */
export function quantityNanos(text: string): bigint | 'negative' | 'huge' | undefined {
  const match = QUANTITY.exec(text);
  if (!match) return undefined;
  const [, sign, number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  const digits = BigInt(`${whole}${fraction}` || '0');
  if (sign === '-' && digits !== 0n) return 'negative';
  const binary = BINARY_SUFFIX[suffix] ?? 0;
  const exponent = /^[eE][+-]?\d/.test(suffix) ? Number(suffix.slice(1)) : (DECIMAL_SUFFIX[suffix] ?? 0);
  const power = exponent - fraction.length + 9;
  if (digits === 0n) return 0n;
  if (power + whole.length > 60) return 'huge';
  if (power < -60) return 1n;
  const scaled = digits * 2n ** BigInt(binary);
  if (power >= 0) return scaled * 10n ** BigInt(power);
  const divisor = 10n ** BigInt(-power);
  return (scaled + divisor - 1n) / divisor;
}

const EXAMPLES = { cpu: '100m or 0.5', memory: '256Mi or 1Gi' } as const;

/** What is wrong with one value of `field`, or undefined; the caller puts the flag or annotation in front. */
export function quantityProblem(field: ProxyResourceField, text: string): string | undefined {
  const kind = field.startsWith('cpu') ? 'cpu' : 'memory';
  const shown = JSON.stringify(text);
  const example = `write e.g. ${EXAMPLES[kind]}`;
  if (text === '')
    return `"" is empty: ${example}, or leave it out for the default (${DEFAULT_PROXY_RESOURCES[field]})`;
  const nanos = quantityNanos(text);
  if (nanos === undefined) return `${shown} is not a Kubernetes quantity: ${example}`;
  if (nanos === 'negative') return `${shown} is negative: ${example}`;
  if (kind === 'cpu') {
    if (nanos === 'huge' || nanos > MAX_CPUS * NANO) {
      return `${shown} is more than ${MAX_CPUS} CPUs (M is millions; millicores are a lower-case m): ${example}`;
    }
    if (nanos === 0n && field === 'cpuLimit') return `${shown} is no CPU at all: ${example}`;
    return undefined;
  }
  if (nanos === 'huge' || nanos > MAX_MEMORY_BYTES * NANO) {
    return `${shown} is more memory than a container can be given (2^63-1 bytes): ${example}`;
  }
  if (nanos % NANO !== 0n) {
    return `${shown} is not a whole number of bytes (m is thousandths; mebibytes are Mi): ${example}`;
  }
  if (field === 'memoryLimit' && nanos < (quantityNanos(MIN_PROXY_MEMORY_LIMIT) as bigint)) {
    return `${shown} is below what the proxy uses idle (about 92 MB): it would be OOM-killed; give at least ${MIN_PROXY_MEMORY_LIMIT} (512Mi or more for a busy proxy)`;
  }
  return undefined;
}

/**
 * Each request above its limit in the resources as merged, phrased from the side of `blamed` (the
 * one the user wrote: the request or the limit); `source` names where the other side came from.
 */
export function requestOverLimitProblems(
  resources: ProxyResources,
  blamed: (request: ProxyResourceField, limit: ProxyResourceField) => ProxyResourceField,
  source: (field: ProxyResourceField) => string,
): { field: ProxyResourceField; message: string }[] {
  const problems: { field: ProxyResourceField; message: string }[] = [];
  for (const [request, limit, what] of [
    ['cpuRequest', 'cpuLimit', 'CPU'],
    ['memoryRequest', 'memoryLimit', 'memory'],
  ] as const) {
    const requested = resources[request];
    const limited = resources[limit];
    if (limited === undefined) continue;
    const requestNanos = quantityNanos(requested);
    const limitNanos = quantityNanos(limited);
    if (typeof requestNanos !== 'bigint' || typeof limitNanos !== 'bigint' || requestNanos <= limitNanos)
      continue;
    const field = blamed(request, limit);
    const message =
      field === request
        ? `${requested} is more than the ${what} limit ${limited} (${source(limit)})`
        : `${limited} is less than the ${what} request ${requested} (${source(request)})`;
    problems.push({
      field,
      message: `${message}: Kubernetes refuses a request above its limit; lower the request or raise the limit`,
    });
  }
  return problems;
}

/** The flags `mutual inject`, `mutual inject serve` and `mutual install` take for them. */
export const RESOURCE_FLAGS: Readonly<Record<ProxyResourceField, string>> = {
  cpuRequest: '--proxy-cpu-request',
  memoryRequest: '--proxy-memory-request',
  cpuLimit: '--proxy-cpu-limit',
  memoryLimit: '--proxy-memory-limit',
};

/** Every problem with the flags given (the rest are the defaults), each naming its flag. */
export function proxyResourceFlagProblems(given: Partial<Record<ProxyResourceField, string>>): string[] {
  const problems: string[] = [];
  for (const field of Object.keys(RESOURCE_FLAGS) as ProxyResourceField[]) {
    const value = given[field];
    const problem = value === undefined ? undefined : quantityProblem(field, value);
    if (problem !== undefined) problems.push(`${RESOURCE_FLAGS[field]} ${problem}`);
  }
  if (problems.length > 0) return problems;
  const isGiven = (field: ProxyResourceField) => given[field] !== undefined;
  return requestOverLimitProblems(
    { ...DEFAULT_PROXY_RESOURCES, ...given },
    (request, limit) => (isGiven(request) || !isGiven(limit) ? request : limit),
    (field) =>
      isGiven(field) ? RESOURCE_FLAGS[field] : `the default; give ${RESOURCE_FLAGS[field]} to change it`,
  ).map(({ field, message }) => `${RESOURCE_FLAGS[field]} ${message}`);
}
