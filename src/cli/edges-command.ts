import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type RefusedHandshakes, recordTrafficSample, refusedHandshakes } from '../mesh/checks/index.ts';
import {
  buildEdges,
  type Edge,
  edgeTarget,
  type MeshRuntime,
  meshPaths,
  readRuntime,
  scrapeProxies,
} from '../mesh/index.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { renderJson } from './render.ts';
import { formatBytes, renderTable } from './table.ts';
import { DEFAULT_MESH_STATE_DIR, stateFlagOf } from './up-command.ts';

interface EdgesOptions {
  output: OutputFormat;
  watch: boolean;
  stateDir: string;
}

export function registerEdgesCommand(program: Command, context: CliContext): void {
  program
    .command('edges')
    .description(
      'who calls whom in the running mesh: identities on both ends, mTLS or why not, requests, denials',
    )
    .addOption(outputOption())
    .option('-w, --watch', 'redraw every 2 seconds until Ctrl-C', false)
    .option('--state-dir <dir>', 'the state directory given to `mutual up`', DEFAULT_MESH_STATE_DIR)
    .addHelpText('after', EDGES_COLUMNS)
    .action(async (options: EdgesOptions) => edges(options, context));
}

/** What each column counts; docs/dashboard-api.md says the same of the dashboard's Edges tab. */
export const EDGES_COLUMNS = `
Columns (counters since the sidecars started, not a recent window):
  SECURED   √ when all of the row's traffic was mTLS, else ✗ and why not
  REQUESTS  HTTP requests, as the destination's sidecar counted them since it (re)started
            (the client's sidecar's count when the destination's reports none)
  NON_5XX   share of REQUESTS answered with a status below 500: Linkerd's "success rate".
            A request denied by policy is answered 403, so it counts here: see DENIED
  DENIED    of REQUESTS, those an AuthorizationPolicy denied (403), or connections refused by
            policy (plaintext under STRICT, a denied TCP connection), same sidecar and window
  CONNS     connections, the larger of both ends' counts: the client's sidecar counts each one
            the app opens, though HTTP/1 requests share a few pooled mTLS connections (which
            the destination's counts), so an app that connects per request shows many
  BYTES     both directions, the larger of both ends' counts
  FAILED    outbound connections that never reached the destination, and why (an HTTP
            request on one is answered 502 by the client's sidecar)
`;

async function edges(options: EdgesOptions, context: CliContext): Promise<void> {
  const paths = meshPaths(resolve(context.cwd, options.stateDir));
  const runtime = await readRuntime(paths);
  const once = async () => {
    const atMs = context.clock.now();
    const scrape = await scrapeProxies(runtime);
    // Kept for `mutual check --traffic-window`, which compares with an earlier sample.
    await recordTrafficSample(paths, runtime, { atMs, proxies: scrape.proxies });
    const found = buildEdges(runtime, scrape.proxies);
    // Clients refused at the TLS handshake (no certificate, another CA, too slow) have no identity
    // and their counter no port, so they are no edge; edges still says that they happened.
    const refused = refusedHandshakes(scrape.proxies);
    if (options.output === 'json')
      return renderJson({ edges: found, refusedHandshakes: refused, unreachable: scrape.unreachable });
    return renderEdges(runtime, found, scrape.unreachable, stateFlagOf(options.stateDir), refused);
  };
  if (!options.watch) {
    context.write(await once());
    return;
  }
  let isDone = false;
  void context.untilShutdown().then(() => {
    isDone = true;
  });
  while (!isDone) {
    const text = await once();
    // Clear the screen and redraw, as `watch` does.
    context.write(`${options.output === 'json' ? '' : '\x1b[H\x1b[2J'}${text}`);
    for (let waited = 0; waited < 2000 && !isDone; waited += 100)
      await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Requests answered below 500, as the dashboard's Non-5xx and Linkerd's success rate: the table
 * showed every request to an app that had died (its sidecar answering 502) as √ with FAILED 0, the
 * 5xx only in -o json. Headed NON_5XX, not SUCCESS: "SUCCESS 100%" beside "DENIED 35" of 35
 * requests read as if the denied calls had succeeded.
 */
function successRate(edge: Edge): string {
  if (edge.requests === 0) return '-';
  const rate = (100 * (edge.requests - edge.serverErrors)) / edge.requests;
  return `${rate === 100 || rate === 0 ? rate : rate.toFixed(1)}%`;
}

/** The edges table; SPIFFE IDs of the mesh's trust domain are shown without `spiffe://<td>/`. */
export function renderEdges(
  runtime: MeshRuntime,
  found: readonly Edge[],
  unreachable: ReadonlyArray<{ service: string; error: string }>,
  stateFlag = '',
  refused: readonly RefusedHandshakes[] = [],
): string {
  const prefix = `spiffe://${runtime.trustDomain}/`;
  const short = (id: string | undefined) =>
    id === undefined ? '-' : id.startsWith(prefix) ? id.slice(prefix.length) : id;
  const rows = found.map((edge) => [
    edge.source,
    edgeTarget(edge),
    short(edge.clientId),
    short(edge.serverId),
    edge.isSecured ? '√' : `✗ ${edge.reason ?? ''}`.trimEnd(),
    String(edge.requests),
    successRate(edge),
    String(edge.connections),
    formatBytes(edge.bytes),
    String(edge.denied),
    edge.failed > 0 ? `${edge.failed} (${edge.failure})` : '0',
  ]);
  let text =
    rows.length === 0
      ? 'No traffic yet: the sidecars have not carried a connection. Send some, then run this again.\n'
      : renderTable(
          [
            'SOURCE',
            'DESTINATION',
            'CLIENT_ID',
            'SERVER_ID',
            'SECURED',
            'REQUESTS',
            'NON_5XX',
            'CONNS',
            'BYTES',
            'DENIED',
            'FAILED',
          ],
          rows,
        );
  for (const { service, reasons } of refused) {
    const byCount = Object.entries(reasons).sort(([a], [b]) => a.localeCompare(b));
    const total = byCount.reduce((sum, [, count]) => sum + count, 0);
    text += `! ${service}'s sidecar refused ${total} TLS handshake${total === 1 ? '' : 's'} since it started (${byCount.map(([reason, count]) => `${count} ${reason}`).join(', ')}); a refused client has no identity, so it is no edge. \`mutual logs ${service} --proxy${stateFlag}\` names the first client of each reason (then a count every 10 s).\n`;
  }
  for (const { service, error } of unreachable) {
    text += `! the sidecar of ${service} did not answer (${error}); its edges are missing. See \`mutual logs ${service} --proxy${stateFlag}\`.\n`;
  }
  return text;
}
