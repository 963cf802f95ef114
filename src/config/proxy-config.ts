// `mutual proxy run` configuration: flags and MUTUAL_PROXY_* environment variables, validated
// once into one read-only value. Every problem is collected and reported together, each with
// the flag that caused it and the fix.
import { MutualError } from '../errors.ts';
import { parseBundlePem } from '../pki/index.ts';
import { type AppProbe, PROXY_ENV, parseAppProbes } from './app-probes.ts';
import { parseDuration, parseDurationWithin } from './duration.ts';
import { type ListenAddress, parseListenAddress } from './listen-address.ts';

export type PeerAuthenticationModeName = 'STRICT' | 'PERMISSIVE' | 'DISABLE';
const MODES: readonly PeerAuthenticationModeName[] = ['STRICT', 'PERMISSIVE', 'DISABLE'];

export type ProxyCredentialsConfig =
  | {
      readonly kind: 'identity-service';
      readonly identityUrl: string;
      readonly tokenFile: string;
      readonly spiffeId: string;
      /** Exactly one of the two: the roots' file, or the roots' PEM itself (from the injector). */
      readonly identityBundleFile?: string;
      readonly identityBundlePem?: string;
      readonly identityServerId?: string;
    }
  | {
      readonly kind: 'files';
      readonly certFile: string;
      readonly keyFile: string;
      readonly bundleFile: string;
    };

export interface ExplicitInbound {
  readonly listen: ListenAddress;
  readonly appPort: number;
}

export interface ExplicitUpstream {
  readonly listen: ListenAddress;
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  /** A new mTLS connection with a full handshake per app connection: no pool, no resumption. */
  readonly fullHandshake: boolean;
}

export interface StaticDestination {
  readonly address: string;
  readonly port: number;
  readonly serverId: string;
}

export interface ProxyConfig {
  readonly credentials: ProxyCredentialsConfig;
  /** Transparent inbound (original destination from iptables), or undefined when off. */
  readonly inboundListen?: ListenAddress;
  readonly inbound: readonly ExplicitInbound[];
  readonly outboundListen?: ListenAddress;
  readonly upstreams: readonly ExplicitUpstream[];
  readonly destinations: readonly StaticDestination[];
  /** The destination service (https://…); undefined: the static table only. */
  readonly destinationUrl?: string;
  /** Its SPIFFE ID; undefined: spiffe://<our trust domain>/ns/mutual-system/sa/destination. */
  readonly destinationServerId?: string;
  /** How long a connection waits for the destination service before the destination counts as unknown. */
  readonly destinationTimeoutMs: number;
  readonly adminListen: ListenAddress;
  readonly mode: PeerAuthenticationModeName;
  readonly portModes: ReadonlyMap<number, PeerAuthenticationModeName>;
  /**
   * App port → the port policy names it by (--policy-port): a loopback mesh's app listens on a
   * port of its own while policies name mesh.yaml's. Unlisted app ports are their own policy port.
   */
  readonly policyPorts: ReadonlyMap<number, number>;
  readonly policyDir?: string;
  /** The destination service's policy API (https://…), instead of --policy-dir. */
  readonly policyUrl?: string;
  readonly namespace?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly probePaths: readonly string[];
  /** The app's kubelet probes the admin server answers at /app-health/<container>/<kind>. */
  readonly appProbes: ReadonlyMap<string, AppProbe>;
  readonly opaquePorts: ReadonlySet<number>;
  readonly skipInboundPorts: ReadonlySet<number>;
  readonly outboundStrict: boolean;
  /** How long to wait for a client's first bytes before treating the stream as opaque. */
  readonly detectTimeoutMs: number;
  /** How long SIGTERM / POST /shutdown waits for open connections before closing them. */
  readonly drainTimeoutMs: number;
  /** An HTTP/2 stream with nothing read or sent for this long is reset both ways; 0: never. */
  readonly streamIdleTimeoutMs: number;
  /**
   * A client connection with nothing in flight this long is closed (HTTP/2: no open stream; opaque
   * TCP and upgrades: no byte either way); 0: never.
   */
  readonly idleTimeoutMs: number;
}

/** Flags as commander hands them over (repeatable flags as arrays). */
export interface ProxyFlags {
  identityUrl?: string;
  tokenFile?: string;
  spiffeId?: string;
  identityBundle?: string;
  identityBundlePem?: string;
  identityServerId?: string;
  cert?: string;
  key?: string;
  bundle?: string;
  inboundListen?: string;
  inbound?: string[];
  outboundListen?: string;
  upstream?: string[];
  upstreamFullHandshake?: string[];
  destination?: string[];
  destinationUrl?: string;
  destinationServerId?: string;
  destinationTimeout?: string;
  adminListen?: string;
  mode?: string;
  portMode?: string[];
  policyPort?: string[];
  policyDir?: string;
  policyUrl?: string;
  namespace?: string;
  label?: string[];
  probePath?: string[];
  appProbes?: string;
  opaquePorts?: string;
  skipInboundPorts?: string;
  outboundStrict?: boolean;
  detectTimeout?: string;
  drainTimeout?: string;
  streamIdleTimeout?: string;
  idleTimeout?: string;
}

export const DEFAULT_OPAQUE_PORTS = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211];

/**
 * Node flags every launcher gives a sidecar (mutual up, the injector, the benchmark). A sidecar's
 * garbage is mostly socket buffers: kept alive across scavenges by a large young generation, they
 * pile up as external memory until V8 runs a full mark-compact for them, and with a heap as small
 * as a sidecar's (~18 MB live) V8 also sets its old-generation limit so low that marking hardly
 * stops. A 2 MB young generation and an old-generation limit that never drops below 64 MB took a
 * 10 MiB download through a pair from ~300 to ~430 MB/s (GC was 35% of the CPU), and new
 * connections from ~205 to ~183 µs of CPU each, in interleaved runs; idle RSS is unchanged.
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=2',
  '--initial-old-space-size=64',
];
const REPEATABLE = new Set([
  'inbound',
  'upstream',
  'upstreamFullHandshake',
  'destination',
  'portMode',
  'policyPort',
  'label',
  'probePath',
]);

/** Fills flags the command line left out from MUTUAL_PROXY_<FLAG> variables. */
export function proxyFlagsFromEnv(flags: ProxyFlags, env: NodeJS.ProcessEnv): ProxyFlags {
  const merged: Record<string, unknown> = { ...flags };
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MUTUAL_PROXY_') || value === undefined) continue;
    const key = name
      .slice('MUTUAL_PROXY_'.length)
      .toLowerCase()
      .replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (merged[key] !== undefined) continue;
    if (key === 'outboundStrict') merged[key] = value === '1' || value === 'true';
    else merged[key] = REPEATABLE.has(key) ? value.split(',').filter(Boolean) : value;
  }
  return merged as ProxyFlags;
}

/** Flags first, then MUTUAL_PROXY_* variables for whatever the flags left out. */
export function loadProxyConfig(commandLine: ProxyFlags, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const flags = proxyFlagsFromEnv(commandLine, env);
  const problems: string[] = [];
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };
  const port = (text: string, flag: string): number => {
    const value = Number(text);
    if (!/^\d{1,5}$/.test(text.trim()) || value < 1 || value > 65535) {
      throw new Error(`${flag} ${JSON.stringify(text)} is not a port: use a number from 1 to 65535`);
    }
    return value;
  };
  const portList = (text: string | undefined, flag: string, fallback: number[]) =>
    new Set(
      text === undefined
        ? fallback
        : text
            .split(',')
            .map((part) => part.trim())
            .filter(Boolean)
            .flatMap((part) => attempt(() => port(part, flag)) ?? []),
    );
  const listenOrOff = (text: string | undefined, flag: string, fallback: string | undefined) => {
    const value = text ?? fallback;
    if (value === undefined || value === 'off') return undefined;
    return attempt(() => parseListenAddress(value, flag));
  };

  const credentials = attempt(() => credentialsFrom(flags));
  const inbound = (flags.inbound ?? []).flatMap((spec) => {
    const parsed = attempt(() => {
      const [listen, appPort] = splitOnce(
        spec,
        '=',
        '--inbound',
        'LISTEN=APP_PORT, e.g. 127.0.0.1:14001=8080',
      );
      return { listen: parseListenAddress(listen, '--inbound'), appPort: port(appPort, '--inbound') };
    });
    return parsed ? [parsed] : [];
  });
  const upstreams = (flags.upstream ?? []).flatMap((spec) => {
    const parsed = attempt(() => {
      const example =
        'LOCAL=ID@HOST:PORT, e.g. 127.0.0.1:9001=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:14002';
      const [listen, target] = splitOnce(spec, '=', '--upstream', example);
      const at = target.lastIndexOf('@');
      if (at < 0) throw new Error(`--upstream ${JSON.stringify(spec)} has no @HOST:PORT: write ${example}`);
      const server = parseListenAddress(target.slice(at + 1), '--upstream');
      return {
        listen: parseListenAddress(listen, '--upstream'),
        serverId: spiffeId(target.slice(0, at), '--upstream'),
        host: server.host,
        port: server.port,
        fullHandshake: false,
      };
    });
    return parsed ? [parsed] : [];
  });
  for (const local of flags.upstreamFullHandshake ?? []) {
    attempt(() => {
      const address = parseListenAddress(local, '--upstream-full-handshake');
      const index = upstreams.findIndex(
        (upstream) => upstream.listen.host === address.host && upstream.listen.port === address.port,
      );
      if (index < 0) {
        throw new Error(
          `--upstream-full-handshake ${local} names no --upstream: give the LOCAL address of one, e.g. 127.0.0.1:9001`,
        );
      }
      upstreams[index] = { ...upstreams[index]!, fullHandshake: true };
    });
  }
  const destinations = (flags.destination ?? []).flatMap((spec) => {
    const parsed = attempt(() => {
      const [address, id] = splitOnce(spec, '=', '--destination', 'IP:PORT=ID');
      const target = parseListenAddress(address, '--destination');
      return { address: target.host, port: target.port, serverId: spiffeId(id, '--destination') };
    });
    return parsed ? [parsed] : [];
  });
  const isExplicit = inbound.length > 0 || upstreams.length > 0;
  const mode = attempt(() => modeFrom(flags.mode ?? 'PERMISSIVE', '--mode'));
  const portModes = new Map<number, PeerAuthenticationModeName>();
  for (const spec of flags.portMode ?? []) {
    attempt(() => {
      const [p, m] = splitOnce(spec, '=', '--port-mode', 'PORT=MODE, e.g. 8080=STRICT');
      portModes.set(port(p, '--port-mode'), modeFrom(m, '--port-mode'));
    });
  }
  const hasTransparentInbound =
    flags.inboundListen === undefined ? !isExplicit : flags.inboundListen !== 'off';
  const policyPorts = new Map<number, number>();
  for (const spec of flags.policyPort ?? []) {
    attempt(() => {
      const form = 'APP_PORT=PORT, e.g. 23456=8080 (the app listens on 23456; policies name 8080)';
      const [app, named] = splitOnce(spec, '=', '--policy-port', form);
      const appPort = port(app, '--policy-port');
      const policyPort = port(named, '--policy-port');
      const earlier = policyPorts.get(appPort);
      if (earlier !== undefined && earlier !== policyPort)
        throw new Error(
          `--policy-port ${spec}: app port ${appPort} is already ${earlier}; give each app port once`,
        );
      // Only an --inbound can name its app port here; the transparent inbound sees any port.
      if (!hasTransparentInbound && !inbound.some((entry) => entry.appPort === appPort))
        throw new Error(
          `--policy-port ${spec}: no --inbound forwards to app port ${appPort}; give the APP_PORT of an --inbound (LISTEN=APP_PORT)`,
        );
      policyPorts.set(appPort, policyPort);
    });
  }
  // A --port-mode no --inbound can reach was silently ignored: a listener port given for the app
  // port left that listener PERMISSIVE while its user believed it STRICT.
  if (!hasTransparentInbound) {
    const named = inbound.map((entry) => policyPorts.get(entry.appPort) ?? entry.appPort);
    for (const [p] of portModes) {
      if (named.includes(p)) continue;
      const listener = inbound.find((entry) => entry.listen.port === p);
      const known = [...new Set(named)].join(', ') || 'none: no --inbound is given';
      problems.push(
        `--port-mode ${p}: no --inbound forwards to port ${p}${listener ? ` (it is where --inbound listens; that one forwards to app port ${listener.appPort})` : ''}: PORT is the app port of an --inbound LISTEN=APP_PORT, or the port --policy-port names it by (here: ${known})`,
      );
    }
  }
  const labels: Record<string, string> = {};
  for (const spec of flags.label ?? []) {
    attempt(() => {
      const [k, v] = splitOnce(spec, '=', '--label', 'KEY=VALUE, e.g. app=web');
      labels[k] = v;
    });
  }
  for (const path of flags.probePath ?? []) {
    if (!path.startsWith('/')) problems.push(`--probe-path ${JSON.stringify(path)} must start with "/"`);
  }
  const appProbes =
    flags.appProbes === undefined
      ? undefined
      : parseAppProbes(flags.appProbes, `--app-probes (${PROXY_ENV.appProbes})`);
  problems.push(...(appProbes?.problems ?? []));
  const config = {
    credentials,
    inboundListen: listenOrOff(
      flags.inboundListen,
      '--inbound-listen',
      isExplicit ? undefined : '0.0.0.0:4143',
    ),
    inbound,
    outboundListen: listenOrOff(
      flags.outboundListen,
      '--outbound-listen',
      isExplicit ? undefined : '127.0.0.1:4140',
    ),
    upstreams,
    destinations,
    destinationUrl:
      flags.destinationUrl && attempt(() => httpsUrl(flags.destinationUrl!, '--destination-url')),
    destinationServerId:
      flags.destinationServerId &&
      attempt(() => spiffeId(flags.destinationServerId!, '--destination-server-id')),
    destinationTimeoutMs: attempt(() =>
      parseDuration(flags.destinationTimeout ?? '1s', '--destination-timeout'),
    ),
    adminListen: listenOrOff(flags.adminListen, '--admin-listen', '127.0.0.1:4191'),
    mode,
    portModes,
    policyPorts,
    policyDir: flags.policyDir,
    policyUrl: flags.policyUrl && attempt(() => httpsUrl(flags.policyUrl!, '--policy-url')),
    namespace: flags.namespace,
    labels,
    probePaths: flags.probePath ?? [],
    appProbes: appProbes?.probes ?? new Map<string, AppProbe>(),
    opaquePorts: portList(flags.opaquePorts, '--opaque-ports', DEFAULT_OPAQUE_PORTS),
    skipInboundPorts: portList(flags.skipInboundPorts, '--skip-inbound-ports', []),
    outboundStrict: flags.outboundStrict === true,
    detectTimeoutMs: attempt(() => parseDuration(flags.detectTimeout ?? '10s', '--detect-timeout')),
    drainTimeoutMs: attempt(() => parseDuration(flags.drainTimeout ?? '10s', '--drain-timeout')),
    streamIdleTimeoutMs: attempt(() =>
      idleDuration(flags.streamIdleTimeout ?? '5m', '--stream-idle-timeout'),
    ),
    idleTimeoutMs: attempt(() => idleDuration(flags.idleTimeout ?? '1h', '--idle-timeout')),
  };
  if (!config.adminListen && flags.adminListen !== 'off') problems.push('--admin-listen is required');
  if (flags.policyDir !== undefined && flags.policyUrl !== undefined) {
    problems.push(
      '--policy-dir and --policy-url both given: policies come from files or from the destination service, not both; keep one',
    );
  }
  if (!config.inboundListen && inbound.length === 0 && !config.outboundListen && upstreams.length === 0) {
    problems.push('nothing to listen on: give --inbound, --upstream, --inbound-listen or --outbound-listen');
  }
  if (problems.length > 0) {
    throw new MutualError(
      'MUTUAL_PROXY_CONFIG_INVALID',
      `the proxy configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      { detail: { problems: problems.length } },
    );
  }
  return config as ProxyConfig;
}

/**
 * An idle timeout: a duration, `0` (or `0s`) for none. At most 24d, about the longest a Node timer
 * waits: a longer one fires at once.
 */
function idleDuration(text: string, flag: string): number {
  if (text.trim() === '0') return 0;
  return parseDurationWithin(text, flag, { atLeast: '0s', atMost: '24d' });
}

/** The credential flags alone (shared with `mutual destination serve`); throws a plain Error naming the problem. */
export function credentialsFrom(flags: ProxyFlags): ProxyCredentialsConfig {
  const files = [flags.cert, flags.key, flags.bundle];
  const bundle = flags.identityBundle ?? flags.identityBundlePem;
  const identity = [flags.identityUrl, flags.tokenFile, flags.spiffeId, bundle];
  if (files.some((f) => f !== undefined) && identity.some((f) => f !== undefined)) {
    throw new Error(
      'give either --cert/--key/--bundle or --identity-url/--token-file/--spiffe-id/--identity-bundle, not both',
    );
  }
  if (files.some((f) => f !== undefined)) {
    if (files.some((f) => f === undefined))
      throw new Error('--cert, --key and --bundle go together: give all three');
    return { kind: 'files', certFile: flags.cert!, keyFile: flags.key!, bundleFile: flags.bundle! };
  }
  if (identity.some((f) => f === undefined)) {
    throw new Error(
      `no credentials: give --identity-url, --token-file, --spiffe-id and --identity-bundle (or its PEM in ${PROXY_ENV.identityBundlePem}) (certificates from \`mutual identity serve\`), or --cert, --key and --bundle (static files)`,
    );
  }
  let url: URL;
  try {
    url = new URL(flags.identityUrl!);
  } catch {
    throw new Error(
      `--identity-url ${JSON.stringify(flags.identityUrl)} is not a URL: write https://HOST:PORT`,
    );
  }
  if (url.protocol !== 'https:') throw new Error('--identity-url must be https://');
  if (flags.identityBundle !== undefined && flags.identityBundlePem !== undefined) {
    throw new Error(
      `give either --identity-bundle FILE or the PEM in ${PROXY_ENV.identityBundlePem} (--identity-bundle-pem), not both`,
    );
  }
  return {
    kind: 'identity-service',
    identityUrl: url.toString(),
    tokenFile: flags.tokenFile!,
    spiffeId: spiffeId(flags.spiffeId!, '--spiffe-id'),
    ...(flags.identityBundlePem === undefined
      ? { identityBundleFile: flags.identityBundle! }
      : { identityBundlePem: bundlePemFrom(flags.identityBundlePem) }),
    identityServerId: flags.identityServerId && spiffeId(flags.identityServerId, '--identity-server-id'),
  };
}

/** The roots as the injector hands them over: parseable PEM CERTIFICATE blocks, each a self-signed CA. */
function bundlePemFrom(text: string): string {
  try {
    parseBundlePem(text, '', PROXY_ENV.identityBundlePem);
    return text;
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new Error(
      `--identity-bundle-pem (${PROXY_ENV.identityBundlePem}) is not a usable trust bundle${code ? ` [${code}]` : ''}: ${(error as Error).message}; give the PEM of the trust anchors (-----BEGIN CERTIFICATE----- blocks), as the injector writes it`,
    );
  }
}

function httpsUrl(text: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${flag} ${JSON.stringify(text)} is not a URL: write https://HOST:PORT`);
  }
  if (url.protocol !== 'https:')
    throw new Error(`${flag} must be https:// (the destination service speaks mTLS only)`);
  return url.origin;
}

function spiffeId(text: string, flag: string): string {
  if (!/^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/.test(text)) {
    throw new Error(
      `${flag}: ${JSON.stringify(text)} is not a workload SPIFFE ID: write spiffe://<trust-domain>/ns/<ns>/sa/<sa>`,
    );
  }
  return text;
}

function modeFrom(text: string, flag: string): PeerAuthenticationModeName {
  const upper = text.toUpperCase();
  if (!(MODES as readonly string[]).includes(upper)) {
    throw new Error(`${flag} ${JSON.stringify(text)} is not a mode: use STRICT, PERMISSIVE or DISABLE`);
  }
  return upper as PeerAuthenticationModeName;
}

function splitOnce(text: string, separator: string, flag: string, form: string): [string, string] {
  const index = text.indexOf(separator);
  if (index <= 0 || index === text.length - 1)
    throw new Error(`${flag} ${JSON.stringify(text)}: write ${form}`);
  return [text.slice(0, index), text.slice(index + 1)];
}
