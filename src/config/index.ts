// Configuration from outside (environment, flags, files), validated once. No other module reads
// process.env; values arrive here and leave as typed, read-only objects.

export {
  APP_HEALTH_PREFIX,
  APP_PROBE_KINDS,
  type AppProbe,
  type AppProbeField,
  type AppProbeSpec,
  appProbePath,
  PROXY_ENV,
  parseAppProbes,
} from './app-probes.ts';
export { type DurationBounds, formatDuration, parseDuration, parseDurationWithin } from './duration.ts';
export { type ListenAddress, parseListenAddress } from './listen-address.ts';

export interface CliEnvironment {
  /** MUTUAL_DEBUG=1: show stack traces for internal errors. */
  readonly isDebug: boolean;
  /** NO_COLOR (https://no-color.org) or a non-TTY stdout turns colour off. */
  readonly isColor: boolean;
}

export function loadCliEnvironment(env: NodeJS.ProcessEnv, isTty: boolean): CliEnvironment {
  return Object.freeze({
    isDebug: env.MUTUAL_DEBUG === '1' || env.MUTUAL_DEBUG === 'true',
    isColor: isTty && env.NO_COLOR === undefined,
  });
}
export {
  credentialsFrom,
  DEFAULT_OPAQUE_PORTS,
  type ExplicitInbound,
  type ExplicitUpstream,
  loadProxyConfig,
  type PeerAuthenticationModeName,
  type ProxyConfig,
  type ProxyCredentialsConfig,
  type ProxyFlags,
  proxyFlagsFromEnv,
  SIDECAR_NODE_FLAGS,
  type StaticDestination,
} from './proxy-config.ts';
