// The `config.mutual.dev/*` annotations of one pod, read and checked: every bad value becomes a
// problem naming the annotation and the format, never a silently unmeshed pod.
import { parsePortList, parseSubnetList } from '../../proxy/intercept/index.ts';
import { ANNOTATIONS, INJECT_VALUES } from '../constants.ts';
import { isImageReference } from '../image-reference.ts';
import { type ProxyResourceField, type ProxyResources, quantityProblem } from './proxy-resources.ts';

export type PeerAuthenticationMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';
export const PEER_AUTHENTICATION_MODES: readonly PeerAuthenticationMode[] = [
  'STRICT',
  'PERMISSIVE',
  'DISABLE',
];

export interface AnnotationProblem {
  readonly annotation: string;
  readonly message: string;
}

/** What the annotations ask for; undefined means "not set", so the injector's default applies. */
export interface PodAnnotationConfig {
  readonly inject?: 'enabled' | 'disabled';
  readonly skipInboundPorts: string;
  readonly skipOutboundPorts: string;
  readonly skipOutboundSubnets: string;
  readonly opaquePorts?: string;
  readonly mode?: PeerAuthenticationMode;
  readonly image?: string;
  readonly resources: Partial<ProxyResources>;
  /** Point the app's HTTP probes at the proxy's admin port (default true). */
  readonly rewriteAppProbes: boolean;
}

/** The annotation that sets each of the proxy's resources. */
export const RESOURCE_ANNOTATIONS: Readonly<Record<ProxyResourceField, string>> = {
  cpuRequest: ANNOTATIONS.proxyCpuRequest,
  memoryRequest: ANNOTATIONS.proxyMemoryRequest,
  cpuLimit: ANNOTATIONS.proxyCpuLimit,
  memoryLimit: ANNOTATIONS.proxyMemoryLimit,
};

export function readPodAnnotations(annotations: Readonly<Record<string, unknown>>): {
  config: PodAnnotationConfig;
  problems: AnnotationProblem[];
} {
  const problems: AnnotationProblem[] = [];
  const text = (key: string): string | undefined => {
    const value = annotations[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') {
      problems.push({ annotation: key, message: `must be a string: quote it, e.g. "${String(value)}"` });
      return undefined;
    }
    return value.trim();
  };
  const checked = (key: string, check: (value: string) => void): string | undefined => {
    const value = text(key);
    if (value === undefined) return undefined;
    try {
      check(value);
      return value;
    } catch (error) {
      problems.push({ annotation: key, message: (error as Error).message });
      return undefined;
    }
  };
  const inject = text(ANNOTATIONS.inject);
  if (inject !== undefined && inject !== INJECT_VALUES.enabled && inject !== INJECT_VALUES.disabled) {
    problems.push({
      annotation: ANNOTATIONS.inject,
      message: `${JSON.stringify(inject)} is not a choice: use "enabled" or "disabled"`,
    });
  }
  const mode = text(ANNOTATIONS.defaultMode);
  if (mode !== undefined && !PEER_AUTHENTICATION_MODES.includes(mode as PeerAuthenticationMode)) {
    problems.push({
      annotation: ANNOTATIONS.defaultMode,
      message: `${JSON.stringify(mode)} is not a mode: use STRICT, PERMISSIVE or DISABLE (upper case)`,
    });
  }
  const rewriteAppProbes = text(ANNOTATIONS.rewriteAppProbes);
  if (rewriteAppProbes !== undefined && rewriteAppProbes !== 'true' && rewriteAppProbes !== 'false') {
    problems.push({
      annotation: ANNOTATIONS.rewriteAppProbes,
      message: `${JSON.stringify(rewriteAppProbes)} is not a choice: use "true" or "false"`,
    });
  }
  const ports = (key: string) => checked(key, (value) => parsePortList(value, key)) ?? '';
  const opaquePorts = checked(ANNOTATIONS.opaquePorts, (value) => {
    for (const range of parsePortList(value, ANNOTATIONS.opaquePorts)) {
      if (range.from !== range.to) {
        throw new Error(`${ANNOTATIONS.opaquePorts} takes single ports, not ranges: write e.g. 3306,5432`);
      }
    }
  });
  const image = checked(ANNOTATIONS.proxyImage, (value) => {
    if (!isImageReference(value)) {
      throw new Error(
        `${JSON.stringify(value)} is not an image reference: write it as [registry/]name[:tag][@sha256:digest], the name in lower case`,
      );
    }
  });
  const resources: Partial<Record<ProxyResourceField, string>> = {};
  for (const [field, key] of Object.entries(RESOURCE_ANNOTATIONS) as [ProxyResourceField, string][]) {
    const value = checked(key, (written) => {
      const problem = quantityProblem(field, written);
      if (problem !== undefined) throw new Error(problem);
    });
    if (value !== undefined) resources[field] = value;
  }
  const config: PodAnnotationConfig = {
    ...(inject === 'enabled' || inject === 'disabled' ? { inject } : {}),
    skipInboundPorts: ports(ANNOTATIONS.skipInboundPorts),
    skipOutboundPorts: ports(ANNOTATIONS.skipOutboundPorts),
    skipOutboundSubnets:
      checked(ANNOTATIONS.skipOutboundSubnets, (value) =>
        parseSubnetList(value, ANNOTATIONS.skipOutboundSubnets),
      ) ?? '',
    ...(opaquePorts === undefined ? {} : { opaquePorts }),
    ...(mode !== undefined && PEER_AUTHENTICATION_MODES.includes(mode as PeerAuthenticationMode)
      ? { mode: mode as PeerAuthenticationMode }
      : {}),
    ...(image === undefined ? {} : { image }),
    resources,
    rewriteAppProbes: rewriteAppProbes !== 'false',
  };
  return { config, problems };
}
