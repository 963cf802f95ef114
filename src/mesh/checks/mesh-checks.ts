import { readFile } from 'node:fs/promises';
import { connect, type PeerCertificate } from 'node:tls';
import { formatDuration } from '../../config/index.ts';
import { identityServiceId } from '../../identity/index.ts';
import { createPeerVerifier, parseBundlePem } from '../../pki/index.ts';
import { MESH_TLS_GROUPS } from '../../tls/index.ts';
import { type LivenessSettings, livenessWindowSeconds } from '../liveness.ts';
import { isRunning, isStopped } from '../processes.ts';
import type { RuntimeProcess, RuntimeService } from '../runtime.ts';
import { verifyChainPem } from '../verify-identity.ts';
import { appListenCheck } from './app-listen-check.ts';
import { caInForce, caInForceCheck, isAnswer, rotationProgressCheck } from './rotation-checks.ts';
import {
  AnsweredByAnother,
  type Check,
  type CheckCategory,
  type CheckContext,
  type CheckResult,
  fail,
  ok,
  plural,
  shellWord,
  skip,
} from './types.ts';

const NOT_RUNNING = 'no mesh is running';
const IDENTITY_SILENT =
  'the identity service does not answer (see "identity service is reachable and ready")';

/**
 * `; <what> (pid N) has exited` when the recorded process is gone, `… is stopped` when it is there
 * but stopped (its port accepts and never answers), else ''. `liveness`: how the runtime's `up`
 * probes it (runtime.json), so a stopped one is said to be killed and started again in time.
 */
export function processNote(
  what: string,
  recorded: RuntimeProcess,
  liveness: LivenessSettings | undefined,
): string {
  if (!(recorded.pid > 0)) return '';
  if (!isRunning(recorded)) return `; ${what} (pid ${recorded.pid}) has exited, its log: ${recorded.log}`;
  if (!isStopped(recorded)) return '';
  const restart = liveness
    ? `, or \`mutual up\` kills it and starts it again once it has not answered /live for ${livenessWindowSeconds(liveness)} s (liveness)`
    : '';
  return `; ${what} (pid ${recorded.pid}) is stopped (kill -STOP, Ctrl-Z or a debugger): \`kill -CONT ${recorded.pid}\` resumes it${restart}`;
}

/** Why a process's admin URL gave no usable answer, and what became of the process. */
export function silence(
  url: string,
  error: Error,
  what: string,
  recorded: RuntimeProcess,
  liveness: LivenessSettings | undefined,
): string {
  return `${url}${error instanceof AnsweredByAnother ? ':' : ' did not answer:'} ${error.message}${processNote(what, recorded, liveness)}`;
}

/**
 * A check that reads a sidecar's /identity: when the sidecar does not answer at all, "sidecar is
 * ready" already fails for it, so this one is skipped instead of failing again with its own
 * advice (a clock fix for a killed process); when only /identity fails, it fails.
 */
async function sidecarSilent(
  context: CheckContext,
  service: RuntimeService,
  error: string,
): Promise<CheckResult> {
  return (await context.adminGet(`${service.adminUrl}/ready`)) instanceof Error
    ? skip('the sidecar does not answer (see "sidecar is ready")', service.name)
    : fail(error, service.name);
}

export const meshChecks: CheckCategory = {
  name: 'mesh',
  checks: [
    {
      description: 'a mesh is running from the state directory',
      hint: 'the identity service and proxy checks need the processes `mutual up` started',
      fix: 'start it: `mutual up -f mesh.yaml` (or pass the --state-dir it was started with); after a `mutual up` that was killed, `mutual down` first. For sidecars started with `mutual proxy run`, give their admin addresses instead: `mutual check --proxy 127.0.0.1:PORT`',
      severity: 'error',
      async run(context) {
        const runtime = context.runtime;
        if (!runtime) return fail(context.runtimeProblem ?? `no runtime.json in ${context.paths.stateDir}`);
        if (!isRunning(runtime.supervisor)) {
          return fail(
            `the \`mutual up\` process (pid ${runtime.supervisor.pid}) is gone; its processes${runtime.network ? ' and network' : ''} may be left behind: run \`mutual down\`, then \`mutual up -f ${shellWord(runtime.file)}${runtime.isolation === 'netns' ? ' --isolation netns' : ''}\` to start it again`,
          );
        }
        return ok(`${plural(runtime.services.length, 'service')} from ${runtime.file}`);
      },
    },
  ],
};

/** Clock difference to a server, from its HTTP Date header (1-second resolution). */
export function clockSkew(date: string | undefined, sentMs: number, receivedMs: number): number | undefined {
  if (!date) return undefined;
  const remoteMs = Date.parse(date);
  if (Number.isNaN(remoteMs)) return undefined;
  const localMs = (sentMs + receivedMs) / 2;
  // The header drops milliseconds: a difference under a second is no difference.
  const differenceMs = remoteMs - localMs;
  return Math.abs(differenceMs) < 1000 ? 0 : differenceMs;
}

export function skewResult(
  skewMs: number | undefined,
  what: string,
  remoteDate: string | undefined,
  context: CheckContext,
  subject?: string,
): CheckResult {
  if (skewMs === undefined) return skip(`${what} sent no Date header`, subject);
  if (Math.abs(skewMs) <= context.thresholds.maxClockSkewMs) return ok('', subject);
  return fail(
    `${what}'s clock is ${formatDuration(Math.abs(skewMs))} ${skewMs > 0 ? 'ahead of' : 'behind'} this machine's (allowed: ${formatDuration(context.thresholds.maxClockSkewMs)})`,
    subject,
    [`${what}: ${remoteDate}`, `this machine: ${new Date(context.clock.now()).toUTCString()}`],
  );
}

export const identityServiceChecks: CheckCategory = {
  name: 'identity service',
  checks: [
    {
      description: 'identity service is reachable and ready',
      hint: 'without it no proxy gets or renews a certificate; running ones keep theirs until they expire',
      fix: 'a stopped one resumes with the `kill -CONT` the message names; `mutual up` starts one that exited or stopped answering /live again by itself (after 1 s, backing off to 30 s), so one that stays down fails each time it starts: read its log (`mutual logs identity`), and restart the mesh (`mutual down && mutual up -f mesh.yaml`) once the cause is fixed',
      severity: 'error',
      async run(context) {
        const runtime = context.runtime;
        if (!runtime) return skip(NOT_RUNNING);
        const answer = await context.adminGet(`${runtime.identity.adminUrl}/ready`);
        if (answer instanceof Error) {
          return fail(
            silence(
              runtime.identity.adminUrl,
              answer,
              'the identity service',
              runtime.identity,
              runtime.liveness,
            ),
          );
        }
        return answer.status === 200
          ? ok(runtime.identity.apiUrl)
          : fail(`${runtime.identity.adminUrl}/ready answered ${answer.status}: ${answer.body.trim()}`);
      },
    },
    {
      description: 'identity service presents its SPIFFE ID, chained to the trust bundle',
      hint: 'proxies verify the identity service like any peer; a wrong certificate stops every renewal',
      fix: 'check that the identity service runs with the CA in the state directory (`mutual logs identity`)',
      severity: 'error',
      async run(context) {
        const runtime = context.runtime;
        if (!runtime) return skip(NOT_RUNNING);
        if ((await context.adminGet(`${runtime.identity.adminUrl}/ready`)) instanceof Error)
          return skip(IDENTITY_SILENT);
        try {
          const chain = await peerChain(runtime.identity.apiUrl);
          // The roots proxies verify it with are the ones it serves: bundle.pem unless it refused
          // the file (then "… on disk in force" says so, and this is no failure of its certificate).
          const inForce = await caInForce(context);
          const bundle =
            isAnswer(inForce) && typeof inForce.trustBundle.pem === 'string'
              ? parseBundlePem(inForce.trustBundle.pem, '', `${runtime.identity.adminUrl}/ca`)
              : parseBundlePem(await readFile(context.paths.bundle, 'utf8'), '', context.paths.bundle);
          const expectedId = identityServiceId(runtime.trustDomain);
          const result = createPeerVerifier({ anchors: bundle.rootsDer, clock: context.clock }).verifySvid(
            chain,
            { expectedId, usage: 'server' },
          );
          return result.ok ? ok(expectedId) : fail(`${result.code}: ${result.message}`);
        } catch (error) {
          return fail(
            `cannot complete a TLS handshake with ${runtime.identity.apiUrl}: ${(error as Error).message}`,
          );
        }
      },
    },
    {
      description: "identity service's clock agrees with this machine's",
      hint: 'certificates are valid from the signer\'s "now"; a skewed clock makes fresh certificates look expired or not yet valid',
      fix: 'synchronise the clocks (NTP: `timedatectl set-ntp true`)',
      severity: 'error',
      async run(context) {
        const runtime = context.runtime;
        if (!runtime) return skip(NOT_RUNNING);
        const sentMs = context.clock.now();
        const answer = await context.adminGet(`${runtime.identity.adminUrl}/ready`);
        if (answer instanceof Error) return skip(IDENTITY_SILENT);
        const date = typeof answer.headers.date === 'string' ? answer.headers.date : undefined;
        return skewResult(
          clockSkew(date, sentMs, context.clock.now()),
          'the identity service',
          date,
          context,
        );
      },
    },
    caInForceCheck,
  ],
};

/** The certificate chain a TLS server presents, leaf first, as DER. */
function peerChain(url: string): Promise<Uint8Array[]> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: hostname,
        port: Number(port),
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
        ecdhCurve: MESH_TLS_GROUPS,
        timeout: 3000,
      },
      () => {
        const chain: Uint8Array[] = [];
        let certificate: PeerCertificate | undefined = socket.getPeerCertificate(true);
        while (certificate?.raw && !chain.some((der) => Buffer.compare(der, certificate!.raw) === 0)) {
          chain.push(certificate.raw);
          certificate = (certificate as { issuerCertificate?: PeerCertificate }).issuerCertificate;
        }
        socket.end();
        resolve(chain);
      },
    );
    socket.once('timeout', () => socket.destroy(new Error('no handshake within 3 s')));
    socket.once('error', reject);
  });
}

/**
 * A sidecar whose join token the identity service refuses (its token file emptied, edited or
 * replaced) cannot renew, and up mints tokens again only every 6 hours: its certificate expires
 * first. The token file, and the command that writes a good one now, with no restart.
 */
function tokenAdvice(context: CheckContext, service: RuntimeService, code: string | undefined): string[] {
  if (code !== 'MUTUAL_IDENTITY_TOKEN_INVALID') return [];
  const argv = service.proxy.argv;
  const at = argv.indexOf('--token-file');
  const file = at >= 0 ? argv[at + 1] : undefined;
  if (file === undefined) return [];
  return [
    `its join token, ${file}, is refused: \`mutual up\` writes a new one only every 6 hours, after the certificate expires; write one now: \`mutual identity token create --ns ${service.namespace} --sa ${service.serviceAccount} --ttl 24h --state-dir ${context.paths.stateDir} > ${file}.new && mv ${file}.new ${file}\` (the sidecar reads it at its next try)`,
  ];
}

/** One result per service, or one skip when no mesh is running. */
async function perService(
  context: CheckContext,
  each: (service: RuntimeService) => Promise<CheckResult>,
): Promise<CheckResult[]> {
  if (!context.runtime) return [skip(NOT_RUNNING)];
  return Promise.all(context.runtime.services.map((service) => each(service)));
}

/** Up to this many services, a passing per-service line says what it found for each. */
const LISTED_IN_FULL = 8;

/**
 * Renewal results as they are for a small mesh; for a bigger one where all pass, one line with
 * the first and last renewal instead of a time per sidecar (1,600 characters at 40 services).
 */
function summarisedRenewals(results: CheckResult[]): CheckResult[] {
  if (results.length <= LISTED_IN_FULL || results.some((result) => result.status !== 'ok')) return results;
  const renewals = results
    .flatMap((result) => {
      const at = /^renews (\S+)$/.exec(result.message)?.[1];
      return at && result.subject ? [{ at, service: result.subject }] : [];
    })
    .sort((a, b) => a.at.localeCompare(b.at));
  const first = renewals[0];
  const last = renewals.at(-1);
  if (!first || !last || renewals.length !== results.length) return results;
  const span =
    first.at === last.at
      ? `all at ${first.at}`
      : `the first ${first.service} at ${first.at}, the last ${last.service} at ${last.at}`;
  return [ok(`${results.length} sidecars, ${span} (\`mutual identity SERVICE\` shows one)`)];
}

export const proxyChecks: CheckCategory = {
  name: 'proxies',
  checks: [
    {
      description: 'sidecar is ready',
      hint: 'a sidecar that is not ready refuses mesh traffic to and from its app',
      fix: 'read its log (`mutual logs SERVICE --proxy`): `mutual up` starts a sidecar that exited again by itself (after 1 s, backing off to 30 s), so one that stays down fails each time it starts, and its log says why',
      severity: 'error',
      run: (context) =>
        perService(context, async (service) => {
          const answer = await context.adminGet(`${service.adminUrl}/ready`);
          if (answer instanceof Error) {
            return fail(
              answer instanceof AnsweredByAnother
                ? `the sidecar's admin port, ${silence(service.adminUrl, answer, 'its process', service.proxy, context.runtime?.liveness)}`
                : `the sidecar does not answer at ${service.adminUrl}: ${answer.message}${processNote('its process', service.proxy, context.runtime?.liveness)}`,
              service.name,
            );
          }
          return answer.status === 200
            ? ok('', service.name)
            : fail(
                `${service.adminUrl}/ready answered ${answer.status}: ${answer.body.trim()}`,
                service.name,
              );
        }),
    },
    {
      description: 'app is running',
      hint: 'the sidecar forwards to an app that is not there: callers get connection errors',
      fix: 'read its log (`mutual logs SERVICE`): `mutual up` starts an app that crashed or was killed again by itself (mesh.yaml `restart: on-failure`, the default), not one that exited with code 0 or has `restart: never`; start those with `mutual down && mutual up -f mesh.yaml`',
      severity: 'error',
      run: (context) =>
        perService(context, async (service) => {
          if (service.app.pid <= 0) return fail('the app was never started', service.name);
          if (isRunning(service.app)) return ok('', service.name);
          const { exit } = service.app;
          // A job that has done its work (a client only: nobody calls it) is complete, as a
          // Kubernetes pod that exited 0 is; it was an error whose "why" spoke of its callers.
          if (exit?.code === 0 && service.ports.length === 0)
            return ok(`completed, exited with code 0 at ${exit.at}`, service.name);
          const how = exit
            ? ` with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`} at ${exit.at}, not to be started again (mesh.yaml restart)`
            : '';
          return fail(`the app (pid ${service.app.pid}) has exited${how}`, service.name);
        }),
    },
    appListenCheck,
    restartsCheck(),
    {
      description: 'certificate is valid and chained to the trust bundle',
      hint: 'peers refuse a sidecar whose certificate they cannot verify',
      fix: 'check the identity service and the sidecar log (`mutual logs SERVICE --proxy`)',
      severity: 'error',
      run: (context) =>
        perService(context, async (service) => {
          const answer = await context.proxyIdentity(service.name);
          if (!answer.ok) return sidecarSilent(context, service, answer.error);
          // The roots peers trust are the ones the identity service serves: bundle.pem, unless it
          // refused or holds a change (then the check of that says so).
          const inForce = await caInForce(context);
          const bundlePem =
            isAnswer(inForce) && typeof inForce.trustBundle.pem === 'string'
              ? inForce.trustBundle.pem
              : await readFile(context.paths.bundle, 'utf8').catch(() => '');
          const result = verifyChainPem(
            answer.identity.certificateChainPem,
            service.spiffeId,
            bundlePem,
            context.clock.now(),
          );
          return result.ok ? ok('', service.name) : fail(`${result.code}: ${result.message}`, service.name);
        }),
    },
    {
      description: 'certificate is renewed on time',
      hint: 'a sidecar renews at 70% of the lifetime; past that, renewals are failing and the certificate will expire',
      fix: 'read the sidecar log (`mutual logs SERVICE --proxy`) and the identity service log (`mutual logs identity`)',
      severity: 'warning',
      run: async (context) =>
        summarisedRenewals(
          await perService(context, async (service) => {
            const answer = await context.proxyIdentity(service.name);
            if (!answer.ok) return sidecarSilent(context, service, answer.error);
            const { renewAt, notAfter, lastRenewal } = answer.identity;
            const nowMs = context.clock.now();
            const renewAtMs = renewAt ? Date.parse(renewAt) : Number.NaN;
            const graceMs = 5 * 60_000;
            const token = tokenAdvice(context, service, lastRenewal?.error?.code);
            if (!Number.isNaN(renewAtMs) && nowMs > renewAtMs + graceMs) {
              return fail(
                `renewal is overdue by ${formatDuration(nowMs - renewAtMs)} (it expires ${notAfter})`,
                service.name,
                lastRenewal?.error?.message
                  ? [`last renewal: ${lastRenewal.error.message}`, ...token]
                  : undefined,
              );
            }
            if (lastRenewal?.error?.message)
              return fail(
                `the last renewal failed: ${lastRenewal.error.message}`,
                service.name,
                token.length > 0 ? token : undefined,
              );
            return ok(renewAt ? `renews ${renewAt.replace(/\.\d{3}Z$/, 'Z')}` : '', service.name);
          }),
        ),
    },
    {
      description: "sidecar's clock agrees with this machine's",
      hint: 'a skewed sidecar sees valid peer certificates as expired or not yet valid',
      fix: 'synchronise the clocks (NTP: `timedatectl set-ntp true`)',
      severity: 'error',
      run: (context) =>
        perService(context, async (service) => {
          const sentMs = context.clock.now();
          const answer = await context.proxyIdentity(service.name);
          if (!answer.ok) return sidecarSilent(context, service, answer.error);
          return skewResult(
            clockSkew(answer.date, sentMs, context.clock.now()),
            `the sidecar of ${service.name}`,
            answer.date,
            context,
            service.name,
          );
        }),
    },
    rotationProgressCheck,
    {
      description: 'identities the sidecars present',
      hint: 'each sidecar proves this SPIFFE ID to its peers; policies and `mutual edges` name workloads by it',
      fix: "`mutual identity SERVICE` shows one sidecar's certificate in full",
      severity: 'info',
      async run(context) {
        if (!context.runtime) return skip(NOT_RUNNING);
        // Who is who, from what each sidecar holds now (`mutual identity SERVICE` shows one in full).
        const named = await Promise.all(
          context.runtime.services.map(async (service) => {
            const answer = await context.proxyIdentity(service.name);
            return { name: service.name, id: answer.ok ? answer.identity.spiffeId : null };
          }),
        );
        const silent = named.flatMap(({ name, id }) => (id ? [] : [name]));
        if (silent.length === named.length) return skip('no sidecar told its identity');
        const none = silent.length > 0 ? `; none from ${silent.join(', ')}` : '';
        if (named.length <= LISTED_IN_FULL) {
          const shown = named.flatMap(({ name, id }) => (id ? [`${name} = ${id}`] : []));
          return ok(`${shown.join('; ')}${none}`);
        }
        // A big mesh: one phrase for those presenting what mesh.yaml gives them, the others in full.
        const expected = new Map(context.runtime.services.map((service) => [service.name, service.spiffeId]));
        const asNamed = named.filter(({ name, id }) => id && id === expected.get(name));
        const others = named.flatMap(({ name, id }) =>
          id && id !== expected.get(name) ? [`${name} = ${id}`] : [],
        );
        const pattern = `spiffe://${context.runtime.trustDomain}/ns/NAMESPACE/sa/SERVICE_ACCOUNT`;
        const phrases = [
          ...(asNamed.length > 0
            ? [`${asNamed.length} of ${named.length} present the one mesh.yaml gives them (${pattern})`]
            : []),
          ...others,
        ];
        return ok(`${phrases.join('; ')}${none}`);
      },
    },
  ],
};

/**
 * Processes `mutual up` has started again after they exited (restarts.ts), as `kubectl get pods`
 * shows RESTARTS: a sidecar or app that keeps exiting is a crash loop the other checks see only in
 * the moments it happens to be down.
 */
function restartsCheck(): Check {
  return {
    description: 'no process has had to be started again',
    hint: 'mutual up starts a process that exits again by itself, after a pause that grows to 30 s, and kills a sidecar or control-plane service that stops answering /live, and an app that fails its livenessProbe (liveness); while it is down, its calls fail',
    fix: 'read the log of each process named (`mutual logs NAME`, `--proxy` for a sidecar): why it exited is at the end of the run before its restart; one killed for liveness was stopped, stuck in a loop or deadlocked, and its log ends with "killed by mutual up"',
    severity: 'warning',
    run: async (context) => {
      if (!context.runtime) return skip(NOT_RUNNING);
      const runtime = context.runtime;
      const processes: Array<[string, RuntimeProcess | undefined]> = [
        ['the identity service', runtime.identity],
        ['the destination service', runtime.destination],
        ...runtime.services.flatMap(
          (service): Array<[string, RuntimeProcess]> => [
            [`${service.name}'s sidecar`, service.proxy],
            [`the app ${service.name}`, service.app],
          ],
        ),
      ];
      const restarted = processes.filter(([, process]) => (process?.restarts ?? 0) > 0);
      if (restarted.length === 0) return ok('');
      return {
        status: 'fail',
        message: `${restarted.length} ${restarted.length === 1 ? 'process was' : 'processes were'} started again after exiting`,
        details: restarted.map(([what, process]) => {
          const exit = process!.lastExit;
          const how = exit ? (exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`) : 'unknown';
          const last =
            exit?.reason === 'liveness'
              ? `the last after \`mutual up\` killed it for liveness: it ${exit.message ?? 'did not answer /live'},`
              : `the last after it exited (${how})`;
          return `${what}: ${process!.restarts} ${process!.restarts === 1 ? 'time' : 'times'}, ${last}${exit ? ` at ${exit.at}` : ''}; its log: ${process!.log}`;
        }),
      };
    },
  };
}
