import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDurationWithin, parseListenAddress } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import { isImageReference } from '../k8s/image-reference.ts';
import {
  CONTROL_PLANE,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_IMAGE,
  DEFAULT_INJECT_OPTIONS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_TRUST_DOMAIN,
  type InjectDefaults,
  injectManifests,
  loadTrustAnchors,
  PEER_AUTHENTICATION_MODES,
  type PeerAuthenticationMode,
  proxyResourceFlagProblems,
  startInjectorWebhook,
} from '../k8s/index.ts';
import { parseTrustDomain } from '../spiffe/index.ts';
import { readBoundedText } from '../store/index.ts';
import type { CliContext } from './context.ts';

interface InjectFlags {
  image: string;
  trustDomain: string;
  trustAnchorsFile?: string;
  defaultMode?: string;
  proxyCpuRequest: string;
  proxyMemoryRequest: string;
  proxyCpuLimit: string;
  proxyMemoryLimit: string;
}

interface ServeFlags extends InjectFlags {
  listen: string;
  adminListen: string;
  cert: string;
  key: string;
  clientTimeout: string;
  maxConnections: string;
  idleTimeout: string;
}

const defaults = DEFAULT_INJECT_OPTIONS.proxyResources;

function addInjectFlags(command: Command): Command {
  return command
    .option('--image <image>', 'the image of mutual-init and mutual-proxy', DEFAULT_IMAGE)
    .option(
      '--trust-domain <domain>',
      'trust domain of the SPIFFE IDs the proxies request',
      DEFAULT_TRUST_DOMAIN,
    )
    .option(
      '--trust-anchors-file <file>',
      "the mesh's trust anchors (PEM roots), written into every proxy's environment; the webhook watches the file (required)",
    )
    .option(
      '--default-mode <mode>',
      'peer authentication (STRICT, PERMISSIVE, DISABLE) for pods without config.mutual.dev/default-mode; unset: the proxy default',
    )
    .option('--proxy-cpu-request <quantity>', 'CPU request of the proxy', defaults.cpuRequest)
    .option('--proxy-memory-request <quantity>', 'memory request of the proxy', defaults.memoryRequest)
    .option('--proxy-cpu-limit <quantity>', 'CPU limit of the proxy', defaults.cpuLimit)
    .option('--proxy-memory-limit <quantity>', 'memory limit of the proxy', defaults.memoryLimit);
}

export function registerInjectCommand(program: Command, context: CliContext): void {
  const inject = addInjectFlags(
    program
      .command('inject')
      .description(
        'add the Mutual sidecar to the pods of Kubernetes manifests (FILE or - for stdin); prints them as given (YAML, or JSON as kubectl prints it), reports on stderr',
      )
      .argument(
        '[file]',
        'YAML or JSON manifests (Deployments, Pods, CronJobs, Lists …), or a directory of them (.yaml, .yml, .json); - reads stdin',
      )
      // kubectl apply -f and istioctl kube-inject -f: the same file, for hands used to them.
      // Repeatable, as kubectl apply takes it (-f a.yaml -f k8s/): each in turn, one output stream.
      .option(
        '-f, --filename <file>',
        'the manifests (a file or directory), as kubectl and istioctl take them (same as FILE); repeat it for more, printed in order',
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      ),
  ).action(async (file: string | undefined, flags: InjectFlags & { filename?: string[] }) => {
    if (file !== undefined && flags.filename !== undefined) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `give the manifests once: ${JSON.stringify(file)} and -f ${flags.filename.map((name) => JSON.stringify(name)).join(' -f ')} both name files: use -f for each`,
      );
    }
    if ((flags.filename ?? []).filter((name) => name === '-').length > 1) {
      throw new MutualError('MUTUAL_CLI_USAGE', 'stdin (-f -) can be read once');
    }
    await injectFile(file === undefined ? flags.filename : [file], flags, context);
  });
  addInjectFlags(
    inject
      .command('serve')
      .description(
        'run the admission webhooks: HTTPS POST /inject injects pods as they are created, POST /validate refuses policies the destination service would skip',
      )
      .requiredOption(
        '--cert <file>',
        'serving certificate (PEM, chain after it); watched, reloaded on change',
      )
      .requiredOption('--key <file>', 'private key of --cert; watched, reloaded on change')
      .option('--listen <address>', 'HTTPS address', `127.0.0.1:${CONTROL_PLANE.injector.port}`)
      .option(
        '--admin-listen <address|off>',
        'admin address (/live, /ready, /metrics)',
        `127.0.0.1:${CONTROL_PLANE.injector.adminPort}`,
      )
      .option('--client-timeout <duration>', "deadline for a client's TLS handshake, headers and body", '10s')
      .option(
        '--max-connections <count>',
        'open connections at most; at the cap the oldest idle or unfinished one is closed for the new one',
        String(DEFAULT_MAX_CONNECTIONS),
      )
      .option(
        '--idle-timeout <duration>',
        'how long a connection is kept open between requests',
        `${DEFAULT_IDLE_TIMEOUT_MS / 1000}s`,
      ),
  ).action(async (flags: ServeFlags) => {
    if (inject.opts().filename !== undefined) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        'inject serve takes no manifests (-f): it injects pods as the API server sends them',
      );
    }
    await serve({ ...flags, ...givenOn(inject) }, context);
  });
}

/**
 * The flags `inject` and `inject serve` both declare are parsed by `inject` wherever they stand
 * (the program does not use positional options), so `serve` takes the ones given on the command line there.
 */
function givenOn(command: Command): Partial<InjectFlags> {
  const opts = command.opts<Record<string, unknown>>();
  return Object.fromEntries(
    Object.keys(opts)
      .filter((key) => command.getOptionValueSource(key) === 'cli')
      .map((key) => [key, opts[key]]),
  );
}

const ANCHORS_HINT =
  "give --trust-anchors-file FILE, the mesh's trust anchors: kubectl -n mutual-system get configmap mutual-trust-anchors -o jsonpath='{.data.ca-bundle\\.crt}' > anchors.pem (or the bundle.pem of `mutual ca create`)";

/** Flags → the injector's settings (the anchors are read by the caller), every bad value reported at once. */
export function injectOptionsFrom(flags: InjectFlags): InjectDefaults {
  const problems: string[] = [];
  if (flags.trustAnchorsFile === undefined) problems.push(ANCHORS_HINT);
  if (!isImageReference(flags.image)) {
    problems.push(
      `--image ${JSON.stringify(flags.image)} is not an image reference; write it as [registry/]name[:tag][@sha256:digest], e.g. ${DEFAULT_IMAGE}`,
    );
  }
  try {
    parseTrustDomain(flags.trustDomain);
  } catch (error) {
    problems.push(`--trust-domain: ${(error as Error).message}`);
  }
  const mode = flags.defaultMode;
  if (mode !== undefined && !PEER_AUTHENTICATION_MODES.includes(mode as PeerAuthenticationMode)) {
    problems.push(`--default-mode ${JSON.stringify(mode)} is not a mode: use STRICT, PERMISSIVE or DISABLE`);
  }
  problems.push(
    ...proxyResourceFlagProblems({
      cpuRequest: flags.proxyCpuRequest,
      memoryRequest: flags.proxyMemoryRequest,
      cpuLimit: flags.proxyCpuLimit,
      memoryLimit: flags.proxyMemoryLimit,
    }),
  );
  if (problems.length > 0) {
    throw new MutualError('MUTUAL_CLI_USAGE', problems.join('; '));
  }
  return {
    image: flags.image,
    trustDomain: flags.trustDomain,
    ...(mode === undefined ? {} : { defaultMode: mode as PeerAuthenticationMode }),
    proxyResources: {
      cpuRequest: flags.proxyCpuRequest,
      memoryRequest: flags.proxyMemoryRequest,
      cpuLimit: flags.proxyCpuLimit,
      memoryLimit: flags.proxyMemoryLimit,
    },
  };
}

/**
 * Manifests can be large (`kubectl get deploy -A -o yaml` of a big cluster, or an injected file
 * read again); the same limit holds for a file and for stdin, and keeps /dev/zero from eating memory.
 */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

function readManifests(file: string, context: CliContext): Promise<string> {
  return readBoundedText(file === '-' ? process.stdin : resolve(context.cwd, file), {
    what: 'manifest file',
    label: file === '-' ? '<stdin>' : resolve(context.cwd, file),
    maxBytes: MAX_MANIFEST_BYTES,
    advice: 'inject it in parts, e.g. one namespace or one kind at a time',
  });
}

async function injectFile(
  files: readonly string[] | undefined,
  flags: InjectFlags,
  context: CliContext,
): Promise<void> {
  if (files === undefined || files.length === 0) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'give a manifest file, or - to read stdin: mutual inject deploy.yaml | kubectl apply -f - (or -f deploy.yaml)',
    );
  }
  const defaults = injectOptionsFrom(flags);
  const anchors = await loadTrustAnchors(
    resolve(context.cwd, flags.trustAnchorsFile ?? ''),
    defaults.trustDomain,
  );
  const options = { ...defaults, trustAnchorsPem: anchors.pem };
  // A directory, as kubectl apply -f and linkerd inject take one: its manifest files in name order.
  const names: string[] = [];
  for (const file of files) names.push(...(file === '-' ? ['-'] : await manifestFiles(file, context)));
  // Every file is read and injected before anything is printed: a bad one stops the run with none.
  const results = [];
  for (const name of names) {
    const shown = name === '-' ? '<stdin>' : name;
    results.push({ shown, result: injectManifests(await readManifests(name, context), shown, options) });
  }
  let isDocumentOpen = false;
  for (const { result } of results) {
    // Files are joined as one YAML stream, each starting a document of its own.
    if (isDocumentOpen && !/^\uFEFF?\s*---/.test(result.outputChunks[0] ?? '')) context.write('---\n');
    for (const chunk of result.outputChunks) context.write(chunk);
    const last = result.outputChunks.at(-1) ?? '';
    isDocumentOpen = last.trim() !== '' && !/(^|\n)---\s*$/.test(last);
    if (isDocumentOpen && !last.endsWith('\n')) context.write('\n');
  }
  if (results.every(({ result }) => result.report.every((line) => line.result === 'note'))) {
    const given = files.map((file) => (file === '-' ? '<stdin>' : file)).join(', ');
    context.writeError(`${given}: no pods or workloads found; printed unchanged\n`);
  }
  for (const { shown, result } of results) {
    for (const line of result.report) {
      const what = line.result === 'injected' ? line.message : `${line.result}: ${line.message}`;
      context.writeError(`${line.name} (${shown}:${line.line}): ${what}\n`);
    }
  }
}

const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

/**
 * `file` itself, or for a directory the manifest files directly in it (.yaml, .yml, .json, sorted;
 * subdirectories are not read, as kubectl without -R), named as given (`k8s/web.yaml`).
 */
async function manifestFiles(file: string, context: CliContext): Promise<string[]> {
  const path = resolve(context.cwd, file);
  let entries: Dirent[];
  try {
    if (!(await stat(path)).isDirectory()) return [file];
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return [file]; // readManifests says what is wrong with it.
  }
  const files = entries
    .filter((entry) => entry.isFile() && MANIFEST_EXTENSIONS.some((ext) => entry.name.endsWith(ext)))
    .map((entry) => entry.name)
    .sort();
  if (files.length === 0) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${file} is a directory without manifest files (${MANIFEST_EXTENSIONS.join(', ')}) in it; subdirectories are not read: give one of them, or a file`,
    );
  }
  let total = 0;
  for (const name of files) total += (await stat(join(path, name))).size;
  if (total > MAX_MANIFEST_BYTES) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `the manifest files in ${file} add up to ${total} bytes; at most ${MAX_MANIFEST_BYTES / (1024 * 1024)} MiB are read at once: inject them in parts, e.g. one file at a time`,
    );
  }
  return files.map((name) => join(file, name));
}

const MAX_CONNECTIONS_CEILING = 1_048_576;

function parseMaxConnections(text: string): number {
  const count = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || count < 1 || count > MAX_CONNECTIONS_CEILING) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--max-connections ${JSON.stringify(text)} must be a whole number from 1 to ${MAX_CONNECTIONS_CEILING}, e.g. ${DEFAULT_MAX_CONNECTIONS}`,
    );
  }
  return count;
}

async function serve(flags: ServeFlags, context: CliContext): Promise<void> {
  const inject = injectOptionsFrom(flags);
  const webhook = await startInjectorWebhook({
    listen: parseListenAddress(flags.listen, '--listen'),
    ...(flags.adminListen === 'off'
      ? {}
      : { adminListen: parseListenAddress(flags.adminListen, '--admin-listen') }),
    tls: { certFile: resolve(context.cwd, flags.cert), keyFile: resolve(context.cwd, flags.key) },
    trustAnchorsFile: resolve(context.cwd, flags.trustAnchorsFile ?? ''),
    inject,
    // 0 turns Node's handshake and header deadlines off; beyond 24.8 days its timers overflow.
    clientTimeoutMs: parseDurationWithin(flags.clientTimeout, '--client-timeout', {
      atLeast: '1s',
      atMost: '10m',
    }),
    maxConnections: parseMaxConnections(flags.maxConnections),
    // 0 would keep idle connections forever.
    idleTimeoutMs: parseDurationWithin(flags.idleTimeout, '--idle-timeout', { atLeast: '1s', atMost: '10m' }),
    log: (line) => context.writeError(line),
  });
  // Signals are handled from before the line saying it listens (see dashboard-command.ts).
  const shutdown = context.untilShutdown();
  context.write(
    `injector webhook listening on ${webhook.url}${webhook.adminUrl ? ` (admin ${webhook.adminUrl})` : ''}\n`,
  );
  const signal = await shutdown;
  context.write(`${signal}: draining and stopping\n`);
  await webhook.close();
}
