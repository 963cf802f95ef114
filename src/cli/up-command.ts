import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { formatDuration, parseDurationWithin } from '../config/index.ts';
import { isMutualError } from '../errors.ts';
import { DEFAULT_CHECK_THRESHOLDS } from '../mesh/checks/index.ts';
import { plural } from '../mesh/checks/types.ts';
import { loadMeshConfig, type MeshProgress, type MeshRuntime, startMesh } from '../mesh/index.ts';
import { createPolicyStore, type PolicyStore } from '../policy/index.ts';
import type { CliContext } from './context.ts';
import { isoSeconds } from './render.ts';

export const DEFAULT_MESH_STATE_DIR = '.mutual';

/** ` --state-dir DIR` for commands printed as advice (quoted for a shell), '' for the default. */
export const stateFlagOf = (stateDir: string): string =>
  stateDir === DEFAULT_MESH_STATE_DIR ? '' : ` --state-dir ${shellQuote(stateDir)}`;

/** A word a POSIX shell reads back as `text`: as is when plain, else in single quotes. */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

interface UpOptions {
  file: string;
  stateDir: string;
  isolation: 'loopback' | 'netns';
  timeout: string;
}

export function registerUpCommand(program: Command, context: CliContext): void {
  program
    .command('up')
    .description(
      'start a mesh on this machine: CA, identity and destination services, and every service of mesh.yaml with its sidecar',
    )
    .requiredOption('-f, --file <mesh.yaml>', 'the mesh file, e.g. examples/demo/mesh.yaml')
    .option('--state-dir <dir>', 'CA, tokens, logs and runtime.json of this mesh', DEFAULT_MESH_STATE_DIR)
    .addOption(
      new Option(
        '--isolation <mode>',
        'loopback: ports on 127.0.0.1, no root; netns: each service a pod (network namespace) on a bridge, transparent proxies (root)',
      )
        .choices(['loopback', 'netns'])
        .default('loopback'),
    )
    .option('--timeout <duration>', 'how long every process together may take to become ready', '60s')
    .action(async (options: UpOptions) => up(options, context));
}

/** `bin/mutual.js` of this installation, to start the identity service and the sidecars. */
export function mutualBinPath(): string {
  return fileURLToPath(new URL('../../../bin/mutual.js', import.meta.url));
}

async function up(options: UpOptions, context: CliContext): Promise<void> {
  // Under a second not even the identity service is ready; past a day is a typo.
  const readyTimeoutMs = parseDurationWithin(options.timeout, '--timeout', { atLeast: '1s', atMost: '24h' });
  const file = resolve(context.cwd, options.file);
  const config = await loadMeshConfig(file);
  const stateDir = resolve(context.cwd, options.stateDir);
  // Relative to where up runs when below it; a path elsewhere (/tmp/x, /run/mutual/...) as it is,
  // not as ../../tmp/x.
  const show = (path: string) => {
    const below = relative(context.cwd, path);
    return below === '' ? '.' : below.startsWith('..') || isAbsolute(below) ? path : below;
  };
  const stateFlag = stateFlagOf(options.stateDir);
  context.write(
    `Starting ${plural(config.services.length, 'service')} from ${show(file)} (trust domain ${config.trustDomain}, state in ${show(stateDir)})\n`,
  );
  // A Ctrl-C from now on stops what was started instead of leaving it behind, and so does the
  // terminal going away (SIGHUP: an SSH session closed), which killed up alone: its processes,
  // each in a process group of its own, served on with nothing to restart them or stop them.
  const abort = new AbortController();
  const shutdown = context.untilShutdown({ isHangupToo: true }).then((signal) => {
    abort.abort(signal);
    return signal;
  });
  const nameWidth = Math.max(11, ...config.services.map((service) => service.name.length));
  const line = (label: string, text: string) => context.write(`  ✓ ${label.padEnd(nameWidth)}  ${text}\n`);
  const onProgress = (event: MeshProgress) => {
    switch (event.kind) {
      case 'stale-cleaned':
        context.write(
          `  - a previous mesh ended without cleaning up; stopped ${event.stopped} leftover processes${event.network ? `, removed ${event.network.namespaces} network namespaces` : ''}\n`,
        );
        break;
      case 'ca':
        line(
          'CA',
          `${event.ca.isCreated ? 'created' : 'reused'} ${show(event.dir)} (issuer valid until ${isoSeconds(event.ca.issuerNotAfterMs)})`,
        );
        {
          // Every certificate ends with its issuer, and the identity service says nothing before: the
          // mesh stops at that moment. Warned as `mutual check` warns, with the same fix.
          const leftMs = event.ca.issuerNotAfterMs - context.clock.now();
          if (leftMs < DEFAULT_CHECK_THRESHOLDS.expiryWarningMs)
            context.writeError(
              `  ! the issuer expires in ${formatDuration(leftMs)}: no certificate outlives it, so every sidecar stops serving then. Make a new one now, with no restart: \`mutual ca issuer --ca ${show(event.dir)} --out next\`, then copy next/issuer.crt and next/issuer.key into ${show(event.dir)}\n`,
            );
        }
        break;
      case 'network':
        line(
          'network',
          `${event.pods} pods on ${event.subnet}, namespaces ${event.id}-* (${seconds(event.elapsedMs)})`,
        );
        break;
      case 'tokens':
        line('tokens', `${plural(event.count, 'join token')} in ${show(event.dir)} (${event.access})`);
        break;
      case 'identity-ready':
        line('identity', `identity service ${event.apiUrl} ready (${seconds(event.elapsedMs)})`);
        break;
      case 'destination-ready':
        line(
          'destination',
          `destination service ${event.apiUrl} ready, answering for ${plural(event.entries, 'meshed address', 'meshed addresses')} (${seconds(event.elapsedMs)})`,
        );
        break;
      case 'service-ready':
        line(event.service.name, `${event.service.spiffeId} ready (${seconds(event.elapsedMs)})`);
        break;
      case 'port-taken':
        context.write(
          `  - ${event.what} found its port taken by another process (log: ${show(event.log)}); stopped everything, starting again on new ports\n`,
        );
        break;
      case 'app-elsewhere':
        context.writeError(
          `  ! the app ${event.service} listens on ${event.listening.join(', ')}, not on $${event.variable}=${event.appPort} it was given for port ${event.port}: it will not be ready until it listens on $${event.variable} (waiting up to --timeout; Ctrl-C stops)\n`,
        );
        break;
      case 'app-exposed':
        context.writeError(
          `  ! the app ${event.service} listens on ${event.sockets.join(', ')}, every interface: other machines reach it in plain text, past its sidecar's mTLS and policy. Make it listen on 127.0.0.1 only (its bind or host setting)\n`,
        );
        break;
      case 'exited': {
        // Killed for liveness and not started again: only an app with restart: never, as a pod's
        // restartPolicy: Never leaves a container the kubelet killed for its livenessProbe.
        const notAgain =
          event.liveness === undefined
            ? ', and its restart policy says not to start it again'
            : ', and not started again: its restart is never (as restartPolicy: Never in Kubernetes); restart: on-failure starts it again after a kill';
        context.writeError(
          `! ${event.what} ${event.liveness === undefined ? `exited (${event.signal ? `signal ${event.signal}` : `code ${event.code}`})` : `${event.liveness}: killed it (liveness)`}${event.restartInMs === undefined ? notAgain : `; starting it again in ${formatDuration(event.restartInMs)}`}; its log: ${show(event.log)}\n`,
        );
        break;
      }
      case 'tokens-reminted':
        context.writeError(
          `  ✓ tokens       ${plural(event.count, 'join token')} minted again: ${event.file} changed (a revocation), and sidecars need valid ones to renew\n`,
        );
        break;
      case 'runtime-unrecorded':
        context.writeError(
          `! cannot record the new process in ${show(event.file)} (${event.message}): \`mutual check\`, \`logs\` and the dashboard still look for the process before it. Make ${show(stateDir)} writable again (free disk space, remount it read-write): the next restart writes the file again; \`mutual down\` and Ctrl-C still stop every process\n`,
        );
        break;
      case 'runtime-recorded':
        context.writeError(`  ✓ ${show(event.file)} records every process again\n`);
        break;
      case 'restarted':
        context.writeError(
          `  ✓ ${event.what} started again (pid ${event.pid}${event.restarts > 1 ? `, restart ${event.restarts} in a row` : ''})\n`,
        );
        break;
    }
  };
  const started = context.clock.now();
  const starting = startMesh(config, {
    clock: context.clock,
    stateDir,
    nodePath: process.execPath,
    mutualBin: mutualBinPath(),
    // The apps inherit this environment (PATH, HOME, locale ...), as they would from a shell.
    baseEnv: process.env,
    readyTimeoutMs,
    isolation: options.isolation,
    onProgress,
    signal: abort.signal,
  });
  const mesh = await starting.catch((error: unknown) => {
    // Ctrl-C (or SIGTERM) while starting is the user's choice, not a failure to explain: startMesh
    // has stopped what it started; say so and exit as an interrupted command does (128 + signal).
    if (isMutualError(error, 'MUTUAL_MESH_START_FAILED') && error.detail.isInterrupted === true)
      return undefined;
    throw error;
  });
  if (!mesh) {
    const signal = String(abort.signal.reason);
    context.write(
      `\n${signal} while starting: stopped everything started so far${options.isolation === 'netns' ? ' and removed its network' : ''}; nothing of this mesh is left running.\n`,
    );
    context.setExitCode(signal === 'SIGTERM' ? 143 : signal === 'SIGHUP' ? 129 : 130);
    return;
  }
  // Before the ready line: an edit made as soon as it shows is reported.
  const policyWatch = await watchPolicyDir(mesh.runtime, context, show);
  context.write(
    `\nThe mesh is up: ${plural(mesh.runtime.services.length, 'service')}, every sidecar ready (${seconds(context.clock.now() - started)}).\n`,
  );
  context.write(renderWhereToLook(mesh.runtime, stateFlag));
  const signal = await shutdown;
  context.write(`\n${signal}: stopping the mesh\n`);
  await policyWatch?.close();
  await mesh.close();
  context.write(
    mesh.runtime.network
      ? `Stopped every process of the mesh and removed its network (${mesh.runtime.network.id}).\n`
      : 'Stopped every process of the mesh.\n',
  );
}

/**
 * Says here, where the mesh was started, what the sidecars do with an edit of the policy files:
 * loaded, or refused with the error (the last good set stays in force), which otherwise only the
 * sidecars' logs and `mutual check` tell. The same checks as the sidecars' (src/policy's store).
 * Files broken when the watch starts (edited while the mesh started) are said and watched too.
 */
async function watchPolicyDir(
  runtime: MeshRuntime,
  context: CliContext,
  show: (path: string) => string,
): Promise<{ close(): Promise<void> } | undefined> {
  const dir = runtime.policyDir;
  if (!dir) return undefined;
  // The store reports a missing directory at every poll: said once here until something changes.
  let lastRefusal: string | undefined;
  const refused = (message: string) => {
    watchForFix();
    if (message === lastRefusal) return;
    lastRefusal = message;
    context.writeError(
      `! policy files in ${show(dir)} refused: the sidecars keep the last good set in force until they are fixed (\`mutual policy check ${show(dir)}\`):\n${message
        .split('\n')
        .map((text) => `    ${text}`)
        .join('\n')}\n`,
    );
  };
  const loaded = () => {
    lastRefusal = undefined;
    stopWatchingFix();
    context.writeError(`  ✓ policies     loaded from ${show(dir)}: the sidecars apply them\n`);
  };
  // Files fixed back to the set in force are no new set (no onChange): the store only clears its
  // error, so without this the refusal stayed the last word here.
  let fixWatch: NodeJS.Timeout | undefined;
  const stopWatchingFix = () => {
    clearInterval(fixWatch);
    fixWatch = undefined;
  };
  const watchForFix = () => {
    if (fixWatch || !store) return;
    fixWatch = setInterval(() => {
      if (store?.lastError !== undefined || lastRefusal === undefined) return;
      lastRefusal = undefined;
      stopWatchingFix();
      context.writeError(
        `  ✓ policies     fixed in ${show(dir)}: the files are the set in force again, which the sidecars apply\n`,
      );
    }, 1000);
    fixWatch.unref();
  };
  let store: PolicyStore | undefined;
  let retry: NodeJS.Timeout | undefined;
  let isClosed = false;
  const attempt = async (isFirst: boolean): Promise<void> => {
    try {
      const created = await createPolicyStore({
        directory: dir,
        onChange: loaded,
        onError: (error) => refused(error.message),
      });
      if (isClosed) return void (await created.close());
      store = created;
      if (!isFirst) loaded();
    } catch (error) {
      // No good set to start from: the first load refuses the files as the sidecars' reload does.
      if (isClosed) return;
      refused((error as Error).message);
      retry = setTimeout(() => void attempt(false), 1000);
    }
  };
  await attempt(true);
  return {
    async close() {
      isClosed = true;
      clearTimeout(retry);
      stopWatchingFix();
      await store?.close();
    },
  };
}

function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : formatDuration(ms);
}

/** Where the apps answer directly and which commands show what the mesh does. */
export function renderWhereToLook(runtime: MeshRuntime, stateFlag: string): string {
  const served = runtime.services.filter((service) => service.ports.length > 0);
  const width = Math.max(...served.map((service) => service.name.length), 4);
  const lines = served.map((service) => {
    const { appPort, protocol } = service.ports[0]!;
    // A tcp port (redis, postgres) is no URL: curl would only send it an HTTP request.
    const name = service.name.padEnd(width);
    if (service.pod) {
      const where =
        protocol === 'tcp'
          ? `127.0.0.1:${appPort} (tcp) inside: ip netns exec ${service.pod.netns} <client>`
          : `ip netns exec ${service.pod.netns} curl http://127.0.0.1:${appPort}/`;
      return `  ${name}  ${where}  (pod ${service.pod.address}; the app itself, as a port-forward reaches it)`;
    }
    const where = protocol === 'tcp' ? `127.0.0.1:${appPort} (tcp)` : `http://127.0.0.1:${appPort}/`;
    return `  ${name}  ${where}  (the app itself, as a port-forward reaches it)`;
  });
  // Where the sidecars take mTLS (what a peer, or openssl s_client, connects to) and their admin.
  const allWidth = Math.max(...runtime.services.map((service) => service.name.length), 4);
  const sidecars = runtime.services.map((service) => {
    // A port in skipInboundPorts has no sidecar listener: callers reach the app there in plain text.
    const inbound = service.ports.flatMap((port) =>
      service.pod
        ? [`${service.pod.address}:${port.port}`]
        : port.inboundPort === undefined
          ? []
          : [`127.0.0.1:${port.inboundPort}`],
    );
    const skipped = service.pod
      ? []
      : service.ports
          .filter((port) => port.inboundPort === undefined)
          .map((port) => `127.0.0.1:${port.appPort}`);
    const plain = skipped.length > 0 ? `; no sidecar (skipInboundPorts) ${skipped.join(', ')}` : '';
    return `  ${service.name.padEnd(allWidth)}  ${inbound.length > 0 ? `mTLS in ${inbound.join(', ')}` : 'no inbound port'}${plain}; admin ${service.adminUrl} (/metrics, /identity)`;
  });
  const first = served[0]?.name ?? runtime.services[0]?.name ?? 'SERVICE';
  const commands: [string, string][] = [
    [`npx mutual edges${stateFlag}`, 'who calls whom, and is it mTLS'],
    [`npx mutual check${stateFlag}`, 'is everything healthy'],
    [`npx mutual dashboard${stateFlag}`, 'all of it in a browser, live (http://127.0.0.1:9800/)'],
    [`npx mutual identity ${first}${stateFlag}`, `${first}'s certificate and when it renews`],
    [`npx mutual logs ${first} --proxy -f${stateFlag}`, `${first}'s sidecar log, followed`],
  ];
  const commandWidth = Math.max(...commands.map(([command]) => command.length)) + 2;
  return [
    '\nApps:',
    ...lines,
    '\nSidecars:',
    ...sidecars,
    '\nLook around (in another terminal):',
    ...commands.map(([command, what]) => `  ${command.padEnd(commandWidth)}${what}`),
    `\nCtrl-C here, or \`npx mutual down${stateFlag}\`, stops everything.\n`,
  ].join('\n');
}
