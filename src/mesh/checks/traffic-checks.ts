import { checkPolicySet, formatDiagnostic, loadPolicyFiles } from '../../policy/index.ts';
import { type Edge, edgeTarget } from '../edges.ts';
import { type CheckCategory, type CheckContext, type CheckResult, fail, ok, plural, skip } from './types.ts';

const describeEdge = (edge: Edge) =>
  `${edge.source} → ${edgeTarget(edge)}: ${[
    plural(edge.connections, 'connection'),
    ...(edge.requests ? [plural(edge.requests, 'request')] : []),
    ...(edge.denied ? [`${edge.denied} denied${deniedByText(edge)}`] : []),
    ...(edge.failed ? [`${edge.failed} failed (${edge.failure})`] : []),
  ].join(', ')}${edge.isSecured ? '' : ` (${edge.reason})`}`;

/** ` by shop/deny-admin (3), shop/allow-web (1)`: which policies decided the denials. */
function deniedByText(edge: Edge): string {
  const entries = Object.entries(edge.deniedBy ?? {});
  return entries.length === 0
    ? ''
    : ` by ${entries.map(([policy, count]) => `${policy} (${count})`).join(', ')}`;
}

/**
 * Reasons that are no plaintext: `refused: not_ready` is a TLS client (its ClientHello seen) that a
 * sidecar without a certificate refused; "sidecar is ready" says why, not "add the client".
 */
const NOT_PLAINTEXT = new Set(['refused: not_ready']);

/** Traffic that went over the wire without mTLS (not a connection that failed, not an idle row). */
const isPlaintext = (edge: Edge) =>
  !edge.isSecured &&
  edge.reason !== undefined &&
  !edge.reason.startsWith('failed') &&
  edge.reason !== 'no traffic' &&
  edge.reason.split(', ').some((reason) => !NOT_PLAINTEXT.has(reason));

/** Runs `pick` over the current edges; one failure listing every edge it picked. */
async function overEdges(
  context: CheckContext,
  pick: (edge: Edge, services: ReadonlySet<string>) => boolean,
  message: (count: number) => string,
  quiet: string,
): Promise<CheckResult> {
  if (!context.runtime) return skip('no mesh is running');
  const { edges, unreachable } = await context.traffic();
  const services = new Set(context.runtime.services.map((service) => service.name));
  const picked = edges.filter((edge) => pick(edge, services));
  const missing = unreachable.map(
    ({ service }) => `no counters from the sidecar of ${service} (it does not answer)`,
  );
  if (picked.length === 0) return ok(missing.length > 0 ? `${quiet}; ${missing.join(', ')}` : quiet);
  return fail(message(picked.length), undefined, [...picked.map(describeEdge), ...missing]);
}

export const trafficChecks: CheckCategory = {
  name: 'traffic',
  checks: [
    {
      description: 'no plaintext traffic into meshed workloads',
      hint: 'plain text is readable and forgeable on the wire; under STRICT it is refused, so the client is broken too',
      fix: 'add the client to mesh.yaml so it gets a sidecar, or call the service through an upstream ($NAME_URL)',
      severity: 'error',
      run: (context) =>
        overEdges(
          context,
          (edge, services) => isPlaintext(edge) && services.has(edge.destination),
          (count) => `${plural(count, 'edge')} into the mesh without mTLS`,
          'every connection into a workload was mTLS',
        ),
    },
    {
      description: 'clients complete the mTLS handshake',
      hint: 'a client refused at the handshake has no certificate this mesh trusts (none, another CA, expired) or does not speak TLS 1.3: every call it makes fails. client_closed is the other way round: the client hung up because it does not trust this sidecar\'s certificate (its own sidecar logs "outbound mTLS failed" with the reason)',
      fix: 'find the client in the sidecar log (`mutual logs SERVICE --proxy`: "inbound client refused" names its address and why), then give it a sidecar (mesh.yaml) or a certificate from this mesh\'s CA',
      severity: 'warning',
      async run(context) {
        if (!context.runtime) return skip('no mesh is running');
        const { refusedHandshakes } = await context.traffic();
        if (refusedHandshakes.length === 0) return ok('no sidecar refused a handshake');
        // One result per sidecar, so the fix names the log of each (`mutual logs web --proxy`).
        return refusedHandshakes.map(({ service, reasons }) => {
          const byCount = Object.entries(reasons).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
          const total = byCount.reduce((sum, [, count]) => sum + count, 0);
          return fail(
            `refused ${plural(total, 'TLS handshake')} (${byCount.map(([reason, count]) => `${count} ${reason}`).join(', ')})`,
            service,
          );
        });
      },
    },
    {
      description: 'outbound connections reach their destinations',
      hint: 'a failed upstream means an app sees connection errors',
      fix: 'check the destination sidecar (`mutual check`, `mutual logs SERVICE --proxy`) and the SPIFFE ID it presents (`mutual identity SERVICE`)',
      severity: 'warning',
      run: (context) =>
        overEdges(
          context,
          (edge) => edge.failed > 0,
          (count) => `${plural(count, 'edge')} with failed connections`,
          'no failed connections',
        ),
    },
    {
      description: 'requests denied by policy',
      hint: 'denials are policy at work; an unexpected one is a client that needs an ALLOW rule',
      fix: 'if a denial is wrong, add the client to the AuthorizationPolicy (`mutual policy check DIR`)',
      severity: 'info',
      run: (context) =>
        overEdges(
          context,
          (edge) => edge.isSecured && edge.denied > 0,
          (count) => `${plural(count, 'edge')} with denials`,
          'no denials',
        ),
    },
  ],
};

export const policyChecks: CheckCategory = {
  name: 'policies',
  checks: [
    {
      description: 'policy files are valid',
      hint: 'sidecars refuse an invalid set and keep the last good one, so edits do not take effect',
      fix: 'fix the files named (`mutual policy check DIR`)',
      severity: 'error',
      async run(context) {
        const policyDir = context.runtime?.policyDir;
        if (!policyDir) return skip(context.runtime ? 'mesh.yaml names no policyDir' : 'no mesh is running');
        try {
          const loaded = await loadPolicyFiles([policyDir]);
          const errors = loaded.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
          return errors.length === 0
            ? ok(
                `${plural(loaded.resources.length, 'policy', 'policies')} in ${plural(loaded.files.length, 'file')}`,
              )
            : fail(
                `${plural(errors.length, 'problem')} in ${policyDir}`,
                undefined,
                errors.map(formatDiagnostic),
              );
        } catch (error) {
          return fail((error as Error).message);
        }
      },
    },
    {
      description: 'policies have no traps',
      hint: 'a policy that selects nothing, or one of two PeerAuthentications that is ignored, does not do what it says',
      fix: 'read each warning and its hint (`mutual policy check DIR`)',
      severity: 'warning',
      async run(context) {
        const runtime = context.runtime;
        if (!runtime?.policyDir) return skip(runtime ? 'mesh.yaml names no policyDir' : 'no mesh is running');
        try {
          const loaded = await loadPolicyFiles([runtime.policyDir]);
          const workloads = runtime.services.map((service) => ({
            namespace: service.namespace,
            serviceAccount: service.serviceAccount,
            labels: service.labels,
            name: service.name,
            ports: service.ports.map((port) => port.port),
          }));
          const warnings = [
            ...loaded.diagnostics.filter((diagnostic) => diagnostic.severity === 'warning'),
            ...checkPolicySet(loaded.resources, { workloads }),
          ];
          return warnings.length === 0
            ? ok()
            : fail(plural(warnings.length, 'warning'), undefined, warnings.map(formatDiagnostic));
        } catch (error) {
          // Unreadable: "policy files are valid" fails with it; a second failure adds nothing.
          return skip(`${(error as Error).message} (see "policy files are valid")`);
        }
      },
    },
  ],
};
