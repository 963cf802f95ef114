import type { ProxySamples } from './edges.ts';
import { parsePrometheusText } from './prometheus-text.ts';
import { httpGet } from './readiness.ts';
import type { MeshRuntime, RuntimeService } from './runtime.ts';

/** What a sidecar's admin /identity answers (docs/proxy.md). */
export interface ProxyIdentity {
  readonly spiffeId: string | null;
  readonly certificateChainPem?: string;
  readonly trustBundlePem?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly renewAt?: string;
  readonly lastRenewal?: {
    readonly result?: string;
    readonly at?: string;
    readonly error?: { code?: string; message?: string } | null;
  };
}

export interface ScrapeResult {
  readonly proxies: ProxySamples[];
  /** Services whose sidecar did not answer, with why. */
  readonly unreachable: Array<{ service: string; error: string }>;
}

/** GET /metrics from every sidecar at once. */
export async function scrapeProxies(runtime: MeshRuntime, timeoutMs = 2000): Promise<ScrapeResult> {
  const results = await Promise.all(
    runtime.services.map(async (service) => {
      try {
        const answer = await httpGet(`${service.adminUrl}/metrics`, timeoutMs);
        if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}`);
        return { service: service.name, samples: parsePrometheusText(answer.body) };
      } catch (error) {
        return { service: service.name, error: (error as Error).message };
      }
    }),
  );
  return {
    proxies: results.flatMap((result) =>
      result.samples ? [{ service: result.service, samples: result.samples }] : [],
    ),
    unreachable: results.flatMap((result) =>
      result.error === undefined ? [] : [{ service: result.service, error: result.error }],
    ),
  };
}

/** GET /identity from one sidecar; the answer and its HTTP Date header. */
export async function fetchProxyIdentity(
  service: RuntimeService,
  timeoutMs = 2000,
): Promise<{ identity: ProxyIdentity; status: number; date: string | undefined }> {
  const answer = await httpGet(`${service.adminUrl}/identity`, timeoutMs);
  let identity: ProxyIdentity;
  try {
    identity = JSON.parse(answer.body) as ProxyIdentity;
  } catch {
    throw new Error(`/identity answered ${answer.status} with something that is not JSON`);
  }
  const date = answer.headers.date;
  return { identity, status: answer.status, date: typeof date === 'string' ? date : undefined };
}
