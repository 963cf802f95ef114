// `mutual install` flags → one validated InstallConfig. Every problem is collected and reported in
// one MUTUAL_K8S_INSTALL_FLAG_INVALID error naming each bad flag and the fix.
import { parseDuration } from '../../config/index.ts';
import { isMutualError, MutualError } from '../../errors.ts';
import { MAX_SVID_LIFETIME_MS } from '../../pki/index.ts';
import { parseTrustDomain } from '../../spiffe/index.ts';
import { DEFAULT_IMAGE } from '../constants.ts';
import { isImageReference } from '../image-reference.ts';
import { proxyResourceFlagProblems } from '../inject/index.ts';

export const WEBHOOK_FAILURE_POLICIES = ['Ignore', 'Fail'] as const;
export type WebhookFailurePolicy = (typeof WEBHOOK_FAILURE_POLICIES)[number];
export const PROXY_DEFAULT_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const;
export type ProxyDefaultMode = (typeof PROXY_DEFAULT_MODES)[number];
export const IMAGE_PULL_POLICIES = ['IfNotPresent', 'Always', 'Never'] as const;
export type ImagePullPolicy = (typeof IMAGE_PULL_POLICIES)[number];

/** The flags as commander hands them over: strings, booleans, undefined when not given. */
export interface InstallFlags {
  image?: string;
  imagePullPolicy?: string;
  trustDomain?: string;
  identityTrustAnchorsFile?: string;
  identityIssuerCertificateFile?: string;
  identityIssuerKeyFile?: string;
  identityExternalIssuer?: boolean;
  identityAnchorLifetime?: string;
  identityIssuerLifetime?: string;
  identityCaOut?: string;
  identitySvidLifetime?: string;
  webhookFailurePolicy?: string;
  webhookCertificateLifetime?: string;
  controlPlaneReplicas?: string;
  proxyCpuRequest?: string;
  proxyMemoryRequest?: string;
  proxyCpuLimit?: string;
  proxyMemoryLimit?: string;
  proxyDefaultMode?: string;
  validateIstioPolicies?: boolean;
}

/** Resources of the injected proxy; unset ones are left to the injector's defaults. */
export interface ProxyResourceFlags {
  readonly cpuRequest?: string;
  readonly memoryRequest?: string;
  readonly cpuLimit?: string;
  readonly memoryLimit?: string;
}

/** Where the identity CA comes from. */
export type IdentityCaSource =
  | {
      kind: 'generated';
      anchorLifetimeMs: number;
      issuerLifetimeMs: number;
      /** Also write the generated CA (with the anchor's key) here, for later upgrades and rotation. */
      outDir?: string;
    }
  | { kind: 'files'; trustAnchorsFile: string; issuerCertificateFile: string; issuerKeyFile: string }
  /** cert-manager (or anything else) writes the issuer Secret; install renders only the anchors. */
  | { kind: 'external'; trustAnchorsFile: string };

export interface InstallConfig {
  readonly image: string;
  readonly imagePullPolicy: ImagePullPolicy;
  /** Undefined when not given: the default, or the trust domain of the issuer brought. */
  readonly trustDomain: string | undefined;
  readonly identityCa: IdentityCaSource;
  /** As given (e.g. "24h"): passed to `mutual identity serve --lifetime`. */
  readonly identitySvidLifetime: string;
  readonly webhookFailurePolicy: WebhookFailurePolicy;
  readonly webhookCertificateLifetimeMs: number;
  readonly controlPlaneReplicas: number;
  readonly proxyResources: ProxyResourceFlags;
  /** Peer authentication of injected proxies without a config.mutual.dev/default-mode annotation. */
  readonly proxyDefaultMode: ProxyDefaultMode | undefined;
  /** The policy validator also checks security.istio.io policies (for clusters where no istiod does). */
  readonly validateIstioPolicies: boolean;
}

export const INSTALL_DEFAULTS = {
  identityAnchorLifetime: '3650d',
  identityIssuerLifetime: '365d',
  identitySvidLifetime: '24h',
  webhookFailurePolicy: 'Ignore',
  webhookCertificateLifetime: '365d',
  controlPlaneReplicas: '1',
  imagePullPolicy: 'IfNotPresent',
} as const;

const MAX_REPLICAS = 10;
/** A CA that expires within the hour is a typo (30m for 30 months) or breaks every workload soon. */
const MIN_CA_LIFETIME_MS = 3_600_000;
export function parseInstallFlags(flags: InstallFlags): InstallConfig {
  const problems: string[] = [];
  const check = <T>(parse: () => T, fallback: T, flag = ''): T => {
    try {
      return parse();
    } catch (error) {
      if (!isMutualError(error)) throw error;
      problems.push(error.message.includes(flag) ? error.message : `${flag}: ${error.message}`);
      return fallback;
    }
  };
  const duration = (value: string, flag: string, maxMs?: number, minMs = 1) =>
    check(() => {
      const ms = parseDuration(value, flag);
      if (ms <= 0) throw flagError(`${flag} ${JSON.stringify(value)} must be longer than zero`);
      if (ms < minMs) {
        throw flagError(
          `${flag} ${JSON.stringify(value)} is too short: give at least ${minMs / 3_600_000}h${/\dm$/.test(value.trim()) ? ' (m is minutes; for months write days, e.g. 90d)' : ''}`,
        );
      }
      if (maxMs !== undefined && ms > maxMs) {
        throw flagError(`${flag} ${value} is longer than the maximum of ${maxMs / 86_400_000}d`);
      }
      return ms;
    }, 1);

  const image = flags.image ?? DEFAULT_IMAGE;
  if (!isImageReference(image)) {
    problems.push(
      `--image ${JSON.stringify(image)} is not an image reference; write it as [registry/]name[:tag][@sha256:digest], e.g. ${DEFAULT_IMAGE}`,
    );
  }
  const imagePullPolicy = oneOf(
    flags.imagePullPolicy ?? INSTALL_DEFAULTS.imagePullPolicy,
    IMAGE_PULL_POLICIES,
    '--image-pull-policy',
    problems,
  );
  const trustDomain =
    flags.trustDomain === undefined
      ? undefined
      : check(() => parseTrustDomain(flags.trustDomain!), undefined, '--trust-domain');
  const identityCa = identityCaSource(flags, problems, duration);
  const identitySvidLifetime = flags.identitySvidLifetime ?? INSTALL_DEFAULTS.identitySvidLifetime;
  duration(identitySvidLifetime, '--identity-svid-lifetime', MAX_SVID_LIFETIME_MS);
  const webhookFailurePolicy = oneOf(
    flags.webhookFailurePolicy ?? INSTALL_DEFAULTS.webhookFailurePolicy,
    WEBHOOK_FAILURE_POLICIES,
    '--webhook-failure-policy',
    problems,
  );
  const webhookCertificateLifetimeMs = duration(
    flags.webhookCertificateLifetime ?? INSTALL_DEFAULTS.webhookCertificateLifetime,
    '--webhook-certificate-lifetime',
    3650 * 86_400_000,
  );
  const replicasText = flags.controlPlaneReplicas ?? INSTALL_DEFAULTS.controlPlaneReplicas;
  const controlPlaneReplicas = Number(replicasText);
  if (!/^\d+$/.test(replicasText) || controlPlaneReplicas < 1 || controlPlaneReplicas > MAX_REPLICAS) {
    problems.push(
      `--control-plane-replicas ${JSON.stringify(replicasText)} must be a whole number from 1 to ${MAX_REPLICAS}`,
    );
  }
  const proxyResources: ProxyResourceFlags = Object.fromEntries(
    (
      [
        ['cpuRequest', flags.proxyCpuRequest],
        ['memoryRequest', flags.proxyMemoryRequest],
        ['cpuLimit', flags.proxyCpuLimit],
        ['memoryLimit', flags.proxyMemoryLimit],
      ] as const
    ).filter(([, value]) => value !== undefined),
  );
  problems.push(...proxyResourceFlagProblems(proxyResources));
  const proxyDefaultMode =
    flags.proxyDefaultMode === undefined
      ? undefined
      : oneOf(flags.proxyDefaultMode, PROXY_DEFAULT_MODES, '--proxy-default-mode', problems);
  if (problems.length > 0) {
    throw new MutualError(
      'MUTUAL_K8S_INSTALL_FLAG_INVALID',
      problems.length === 1 ? problems[0]! : `bad flags:\n  - ${problems.join('\n  - ')}`,
      { detail: { problems: problems.length } },
    );
  }
  return Object.freeze({
    image,
    imagePullPolicy,
    trustDomain,
    identityCa,
    identitySvidLifetime,
    webhookFailurePolicy,
    webhookCertificateLifetimeMs,
    controlPlaneReplicas,
    proxyResources,
    proxyDefaultMode,
    validateIstioPolicies: flags.validateIstioPolicies === true,
  });
}

function identityCaSource(
  flags: InstallFlags,
  problems: string[],
  duration: (value: string, flag: string, maxMs?: number, minMs?: number) => number,
): IdentityCaSource {
  const anchors = flags.identityTrustAnchorsFile;
  const certificate = flags.identityIssuerCertificateFile;
  const key = flags.identityIssuerKeyFile;
  const lifetimeFlags = [
    flags.identityAnchorLifetime === undefined ? undefined : '--identity-anchor-lifetime',
    flags.identityIssuerLifetime === undefined ? undefined : '--identity-issuer-lifetime',
    flags.identityCaOut === undefined ? undefined : '--identity-ca-out',
  ].filter((flag) => flag !== undefined);
  const onlyForGenerated = (mode: string) => {
    if (lifetimeFlags.length > 0) {
      const [verb, pronoun] = lifetimeFlags.length === 1 ? ['applies', 'it'] : ['apply', 'them'];
      problems.push(
        `${lifetimeFlags.join(', ')} ${verb} only to a generated CA, not with ${mode}; drop ${pronoun}`,
      );
    }
  };
  if (flags.identityExternalIssuer) {
    onlyForGenerated('--identity-external-issuer');
    if (certificate !== undefined || key !== undefined) {
      problems.push(
        '--identity-external-issuer means cert-manager writes the issuer Secret; drop --identity-issuer-certificate-file and --identity-issuer-key-file',
      );
    }
    if (anchors === undefined) {
      problems.push(
        '--identity-external-issuer needs --identity-trust-anchors-file: the root(s) your cert-manager issuer chains to',
      );
    }
    return { kind: 'external', trustAnchorsFile: anchors ?? '' };
  }
  const given = [anchors, certificate, key].filter((value) => value !== undefined).length;
  if (given > 0) {
    onlyForGenerated('a CA of your own');
    if (given < 3) {
      const missing = [
        anchors === undefined ? '--identity-trust-anchors-file' : undefined,
        certificate === undefined ? '--identity-issuer-certificate-file' : undefined,
        key === undefined ? '--identity-issuer-key-file' : undefined,
      ].filter((flag) => flag !== undefined);
      problems.push(`a CA of your own needs all three --identity-* files; missing ${missing.join(', ')}`);
    }
    return {
      kind: 'files',
      trustAnchorsFile: anchors ?? '',
      issuerCertificateFile: certificate ?? '',
      issuerKeyFile: key ?? '',
    };
  }
  const anchorLifetimeMs = duration(
    flags.identityAnchorLifetime ?? INSTALL_DEFAULTS.identityAnchorLifetime,
    '--identity-anchor-lifetime',
    undefined,
    MIN_CA_LIFETIME_MS,
  );
  const issuerLifetimeMs = duration(
    flags.identityIssuerLifetime ?? INSTALL_DEFAULTS.identityIssuerLifetime,
    '--identity-issuer-lifetime',
    undefined,
    MIN_CA_LIFETIME_MS,
  );
  if (issuerLifetimeMs > anchorLifetimeMs) {
    problems.push('--identity-issuer-lifetime must not be longer than --identity-anchor-lifetime');
  }
  return {
    kind: 'generated',
    anchorLifetimeMs,
    issuerLifetimeMs,
    ...(flags.identityCaOut === undefined ? {} : { outDir: flags.identityCaOut }),
  };
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string, problems: string[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  problems.push(`${flag} ${JSON.stringify(value)} must be one of ${allowed.join(', ')}`);
  return allowed[0]!;
}

function flagError(message: string): MutualError {
  return new MutualError('MUTUAL_K8S_INSTALL_FLAG_INVALID', message);
}
