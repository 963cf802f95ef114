import type { Command } from 'commander';
import type { Clock } from '../clock.ts';
import { loadProxyConfig, type ProxyConfig, type ProxyFlags } from '../config/index.ts';
import { isMutualError } from '../errors.ts';
import { createPolicyStore, trustDomainOf, type WorkloadPolicy, type WorkloadRef } from '../policy/index.ts';
import {
  createPolicyClient,
  createProxy,
  createProxyLog,
  loadCredentialFiles,
  type ProxyDeps,
  type ProxyLog,
  withDefaultModes,
} from '../proxy/index.ts';
import type { CliContext } from './context.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `mutual proxy run`: the sidecar, in the foreground until SIGTERM / Ctrl-C / POST /shutdown. */
export function registerProxyRunCommand(proxy: Command, context: CliContext): void {
  proxy
    .command('run')
    .description(
      'run the sidecar proxy for one workload (flags: docs/proxy.md; each also as MUTUAL_PROXY_<FLAG>)',
    )
    .option('--identity-url <url>', 'identity service to certify against, e.g. https://127.0.0.1:8443')
    .option(
      '--token-file <file>',
      'join token or projected ServiceAccount token (read again on every renewal)',
    )
    .option('--spiffe-id <id>', 'the SPIFFE ID to request, e.g. spiffe://cluster.local/ns/demo/sa/web')
    .option('--identity-bundle <file>', 'roots that vouch for the identity service (bundle.pem)')
    .option(
      '--identity-bundle-pem <pem>',
      'the same roots as PEM text instead of a file (the injector sets MUTUAL_PROXY_IDENTITY_BUNDLE_PEM)',
    )
    .option(
      '--identity-server-id <id>',
      'SPIFFE ID of the identity service (default spiffe://<td>/ns/mutual-system/sa/identity)',
    )
    .option('--cert <file>', 'static certificate chain, leaf first (instead of the identity service)')
    .option('--key <file>', 'private key of --cert')
    .option('--bundle <file>', 'trust roots for peers')
    .option(
      '--inbound-listen <address|off>',
      'transparent inbound listener (default 0.0.0.0:4143 unless --inbound/--upstream is given)',
    )
    .option(
      '--inbound <listen=appPort>',
      'explicit inbound listener, e.g. 127.0.0.1:14001=8080 (repeatable)',
      collect,
    )
    .option(
      '--outbound-listen <address|off>',
      'transparent outbound listener (default 127.0.0.1:4140 unless --inbound/--upstream is given)',
    )
    .option(
      '--upstream <local=id@host:port>',
      'explicit upstream, e.g. 127.0.0.1:9001=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:14002 (repeatable)',
      collect,
    )
    .option(
      '--upstream-full-handshake <local>',
      'for the --upstream listening at LOCAL: a new mTLS connection with a full handshake per app connection, no pooling or session resumption (to measure handshake cost; repeatable)',
      collect,
    )
    .option('--destination <ip:port=id>', 'meshed destination for transparent outbound (repeatable)', collect)
    .option(
      '--destination-url <url>',
      'destination service for transparent outbound, e.g. https://mutual-destination.mutual-system.svc:8086',
    )
    .option(
      '--destination-server-id <id>',
      'its SPIFFE ID (default spiffe://<td>/ns/mutual-system/sa/destination)',
    )
    .option(
      '--destination-timeout <duration>',
      'longest wait for its answer before a destination counts as unknown (default 1s)',
    )
    .option(
      '--admin-listen <address|off>',
      'admin: /live /ready /metrics /identity POST /shutdown (default 127.0.0.1:4191)',
    )
    .option(
      '--mode <mode>',
      'inbound peer authentication (with --policy-dir or --policy-url: where no PeerAuthentication sets one): STRICT, PERMISSIVE or DISABLE',
    )
    .option(
      '--port-mode <port=mode>',
      'per-port peer authentication, e.g. 8080=STRICT: the app port of an --inbound (or its --policy-port), not where it listens (repeatable)',
      collect,
    )
    .option(
      '--policy-port <appPort=port>',
      'the port policies name an --inbound app port by, e.g. 23456=8080: port modes, AuthorizationPolicy ports and destination.port match 8080 (repeatable; mutual up sets it)',
      collect,
    )
    .option('--policy-dir <dir>', 'PeerAuthentication / AuthorizationPolicy YAML files (watched)')
    .option(
      '--policy-url <url>',
      "the destination service's policies for this workload's namespace (long poll), instead of --policy-dir",
    )
    .option('--namespace <ns>', 'namespace policies select this workload by (default: from the SPIFFE ID)')
    .option('--label <key=value>', 'workload label policies select by (repeatable)', collect)
    .option('--probe-path <path>', 'HTTP path never blocked by authorization (repeatable)', collect)
    .option(
      '--app-probes <json>',
      "the app's HTTP probes the admin port answers at /app-health/<container>/<livez|readyz|startupz> (the injector sets MUTUAL_PROXY_APP_PROBES)",
    )
    .option('--opaque-ports <list>', 'server-speaks-first ports: no protocol detection')
    .option('--skip-inbound-ports <list>', 'ports passed through without mTLS or policy')
    .option('--outbound-strict', 'refuse connections to unmeshed destinations')
    // No commander defaults: a flag commander fills in hides its MUTUAL_PROXY_* variable, and
    // loadProxyConfig has the defaults.
    .option('--detect-timeout <duration>', 'wait this long for a client to speak first (default 10s)')
    .option('--drain-timeout <duration>', 'on shutdown, wait this long for open connections (default 10s)')
    .option(
      '--stream-idle-timeout <duration>',
      'reset an HTTP/2 stream (both ways) with nothing read or sent this long; 0: never (default 5m)',
    )
    .option(
      '--idle-timeout <duration>',
      'close a connection with nothing in flight this long (HTTP/2: no open stream; opaque TCP: no byte either way); 0: never (default 1h)',
    )
    .action(async (flags: ProxyFlags) => {
      const config = loadProxyConfig(flags);
      if (config.credentials.kind === 'files')
        await refuseUnusableCredentialFiles(config.credentials, context.clock);
      const log = createProxyLog(
        (line) => context.writeError(line),
        () => context.clock.now(),
      );
      let requestShutdown: (reason: string) => void = () => {};
      const shutdownRequested = new Promise<string>((resolve) => {
        requestShutdown = resolve;
      });
      const policy = config.policyDir ? await watchPolicies(config, log, context.clock) : undefined;
      const policySource = config.policyUrl ? await fetchPolicies(config, log, context.clock) : undefined;
      const proxy = createProxy(config, {
        clock: context.clock,
        log,
        policy: policy?.forThisWorkload,
        ...(policySource ? { policySource } : {}),
        onShutdownRequest: () => requestShutdown('POST /shutdown'),
      });
      // A listener that cannot bind ends the command: release what did start (credential loop,
      // other listeners, policy watcher), or the process would live on listening on nothing.
      const addresses = await proxy.start().catch(async (error: unknown) => {
        proxy.destroy();
        await policy?.store.close();
        throw error;
      });
      const show = (a: { address: string; port: number }) =>
        `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
      const lines = [
        ...addresses.inbound.map(
          (entry) =>
            `inbound  ${show(entry.listen)} → app ${entry.appPort === 'original-destination' ? '(original destination)' : `127.0.0.1:${entry.appPort}${config.policyPorts.has(entry.appPort) ? ` (policy port ${config.policyPorts.get(entry.appPort)})` : ''}`}`,
        ),
        ...addresses.outbound.map((entry) => `outbound ${show(entry.listen)} → ${entry.target}`),
        ...(addresses.admin ? [`admin    http://${show(addresses.admin)}`] : []),
      ];
      // Signals (SIGHUP too) are handled from before the line saying it listens (see dashboard-command.ts).
      const shutdown = context.untilShutdown();
      const onHangup = () => {
        log.info('SIGHUP: reloading credentials');
        proxy.reloadCredentials();
      };
      process.on('SIGHUP', onHangup);
      context.write(`mutual proxy listening:\n${lines.map((line) => `  ${line}\n`).join('')}`);
      const reason = await Promise.race([shutdown, shutdownRequested]);
      process.off('SIGHUP', onHangup);
      log.info('draining', { reason, timeoutMs: config.drainTimeoutMs });
      await proxy.close();
      await policy?.store.close();
      log.info('stopped');
    });
}

/** The policy directory, watched; this workload's compiled policy is rebuilt only when files change. */
async function watchPolicies(config: ProxyConfig, log: ProxyLog, clock: Clock) {
  const store = await createPolicyStore({
    directory: config.policyDir!,
    onChange: (_set, generation) => log.info('policies loaded', { directory: config.policyDir, generation }),
    onError: (error) =>
      log.warn('policy files refused; the last good set stays in force', {
        code: error.code,
        error: error.message,
      }),
  });
  const workload = await thisWorkload(config, log, clock);
  let cached: WorkloadPolicy | undefined;
  let cachedGeneration = -1;
  return {
    store,
    forThisWorkload: (): WorkloadPolicy => {
      if (cachedGeneration !== store.generation || !cached) {
        // --mode / --port-mode where no PeerAuthentication of the directory sets a mode, as with
        // --policy-url: before, they were ignored, and `--mode STRICT` let plaintext in.
        cached = withDefaultModes(store.forWorkload(workload), {
          defaultMode: config.mode,
          defaultPortModes: config.portModes,
        });
        cachedGeneration = store.generation;
      }
      return cached;
    },
  };
}

/** --policy-url: the destination service's policy set for this workload, followed by long poll. */
async function fetchPolicies(
  config: ProxyConfig,
  log: ProxyLog,
  clock: Clock,
): Promise<ProxyDeps['policySource']> {
  const workload = await thisWorkload(config, log, clock);
  return ({ meshTls, registry }) =>
    createPolicyClient({
      url: config.policyUrl!,
      ...(config.destinationServerId ? { serverId: config.destinationServerId } : {}),
      workload,
      defaultMode: config.mode,
      defaultPortModes: config.portModes,
      meshTls,
      clock,
      log,
      registry,
    });
}

async function thisWorkload(config: ProxyConfig, log: ProxyLog, clock: Clock): Promise<WorkloadRef> {
  const spiffeId = await ownSpiffeId(config, clock);
  const namespace =
    config.namespace ?? (spiffeId ? /\/ns\/([^/]+)\//.exec(spiffeId)?.[1] : undefined) ?? 'default';
  // Policies' `cluster.local/...` principals name this trust domain, as in Istio.
  const trustDomain = spiffeId ? trustDomainOf(spiffeId) : undefined;
  log.info('policy selects this workload as', { namespace, labels: config.labels, trustDomain });
  return { namespace, labels: config.labels, ...(trustDomain ? { trustDomain } : {}) };
}

async function ownSpiffeId(config: ProxyConfig, clock: Clock): Promise<string | undefined> {
  if (config.credentials.kind === 'identity-service') return config.credentials.spiffeId;
  return loadCredentialFiles(config.credentials, clock).then(
    (credentials) => credentials.spiffeId,
    () => undefined,
  );
}

/** Failures of static credential files that time or another process may mend: waited for. */
const MENDABLE_CREDENTIAL_FAILURES = new Set(['MUTUAL_PKI_CERT_EXPIRED', 'MUTUAL_PKI_CERT_NOT_YET_VALID']);

/**
 * Static credentials that can never work (a key given as the certificate, a key that belongs to
 * another certificate, a chain under other roots) end the command at start, as ghostunnel does,
 * instead of a sidecar that says it is listening and is never ready. Files not there (yet), and a
 * certificate expired or not yet valid, are waited for as before: mounted later, or renewed by
 * another process. One second's grace rides out a rotation caught between its certificate and key.
 */
async function refuseUnusableCredentialFiles(
  files: { certFile: string; keyFile: string; bundleFile: string },
  clock: Clock,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await loadCredentialFiles(files, clock);
      return;
    } catch (error) {
      if (!isMutualError(error) || error.code === 'MUTUAL_IO_READ_FAILED') return;
      if (MENDABLE_CREDENTIAL_FAILURES.has(String(error.detail?.reason))) return;
      if (attempt === 2) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
