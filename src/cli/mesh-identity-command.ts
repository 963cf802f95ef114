import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { formatDuration } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import {
  fetchProxyIdentity,
  findService,
  isRunning,
  meshPaths,
  type ProxyIdentity,
  readRuntime,
} from '../mesh/index.ts';
import {
  createPeerVerifier,
  type ParsedCertificate,
  parseBundlePem,
  parseCertificatesPem,
} from '../pki/index.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { colonHex, describeValidity, isoSeconds, renderFields, renderJson } from './render.ts';
import { DEFAULT_MESH_STATE_DIR, stateFlagOf } from './up-command.ts';

interface ShowOptions {
  output: OutputFormat;
  stateDir: string;
}

/**
 * `mutual identity show SERVICE`, and `mutual identity SERVICE` for short: the certificate a
 * running sidecar holds now. Added to the `identity` group next to `serve` and `token`.
 */
export function registerMeshIdentityCommand(program: Command, context: CliContext): void {
  const identity = program.commands.find((command) => command.name() === 'identity');
  if (!identity) throw new Error('registerMeshIdentityCommand must come after registerIdentityCommand');
  const show = identity
    .command('show')
    .description(
      "a mesh service's current certificate chain (from its sidecar), verified, with time to renewal",
    )
    .argument('<service>', 'service name from mesh.yaml')
    .addOption(outputOption())
    .option('--state-dir <dir>', 'the state directory given to `mutual up`', DEFAULT_MESH_STATE_DIR)
    .action(async (service: string, options: ShowOptions) => showIdentity(service, options, context));
  // `mutual identity web`: anything that is not a subcommand is a service name. No options are
  // declared on the group itself, so `serve --state-dir` and `token create --state-dir` keep theirs.
  identity
    .argument('[service]', "show this service's certificate (same as `identity show SERVICE`)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (service: string | undefined, _options: unknown, command: Command) => {
      // As any other group without its subcommand: help on stderr, usage error (exit 2).
      if (service === undefined) return identity.help({ error: true });
      if (service === 'help') return identity.help();
      // `identity srve --ca ca` was taken for a service named srve: "unknown option '--ca'" (or
      // "too many arguments for 'show'", "no mesh is running") instead of the typo. A service whose
      // name is one edit from a subcommand is shown with `identity show NAME`, as the error says.
      const meant = identity.commands
        .map((sub) => sub.name())
        .find((name) => name !== 'help' && isOneEditApart(service, name));
      if (meant !== undefined) {
        throw new MutualError(
          'MUTUAL_CLI_USAGE',
          `unknown command 'identity ${service}': did you mean \`mutual identity ${meant}\`? (for the certificate of a mesh service named ${service}: \`mutual identity show ${service}\`)`,
        );
      }
      await show.parseAsync(command.args, { from: 'user' });
    });
}

async function showIdentity(name: string, options: ShowOptions, context: CliContext): Promise<void> {
  const paths = meshPaths(resolve(context.cwd, options.stateDir));
  const runtime = await readRuntime(paths);
  const service = findService(runtime, name);
  let answer: Awaited<ReturnType<typeof fetchProxyIdentity>>;
  try {
    answer = await fetchProxyIdentity(service);
  } catch (error) {
    throw new MutualError(
      'MUTUAL_MESH_ADMIN_UNREACHABLE',
      `the sidecar of ${name} did not answer at ${service.adminUrl}/identity: ${(error as Error).message}${
        isRunning(service.proxy) ? '' : `; its process (pid ${service.proxy.pid}) has exited`
      }. Read its log (\`mutual logs ${name} --proxy${stateFlagOf(options.stateDir)}\`)${
        isRunning(service.proxy) ? '' : `, then restart the mesh`
      }`,
      { cause: error },
    );
  }
  const view = await identityView(answer.identity, service.spiffeId, paths.bundle, context.clock.now());
  if (options.output === 'json') {
    context.write(renderJson({ service: name, ...view.json }));
  } else {
    context.write(renderIdentity(name, view));
  }
  if (!view.json.verification.ok) context.setExitCode(1);
}

interface IdentityView {
  readonly json: {
    spiffeId: string | null;
    expectedSpiffeId: string;
    notBefore: string | undefined;
    notAfter: string | undefined;
    renewAt: string | undefined;
    renewsInSeconds: number | undefined;
    lastRenewal: ProxyIdentity['lastRenewal'];
    verification: { ok: true; validUntil: string } | { ok: false; code: string; message: string };
    chain: ReturnType<typeof certificateSummary>[];
  };
  readonly nowMs: number;
  readonly chain: readonly ParsedCertificate[];
}

/** The sidecar's answer, its chain parsed and verified against the mesh's trust bundle on disk. */
export async function identityView(
  identity: ProxyIdentity,
  expectedId: string,
  bundlePath: string,
  nowMs: number,
): Promise<IdentityView> {
  const chain = identity.certificateChainPem
    ? parseCertificatesPem(identity.certificateChainPem, 'chain')
    : [];
  let verification: IdentityView['json']['verification'];
  if (chain.length === 0) {
    verification = { ok: false, code: 'NO_CERTIFICATE', message: 'the sidecar has no certificate yet' };
  } else {
    const bundle = parseBundlePem(await readFile(bundlePath, 'utf8'), '', bundlePath);
    const result = createPeerVerifier({ anchors: bundle.rootsDer }).verifySvid(
      chain.map((certificate) => certificate.der),
      { expectedId, atMs: nowMs },
    );
    verification = result.ok
      ? { ok: true, validUntil: isoSeconds(result.validUntilMs) }
      : { ok: false, code: result.code, message: result.message };
  }
  const renewAtMs = identity.renewAt ? Date.parse(identity.renewAt) : undefined;
  return {
    nowMs,
    chain,
    json: {
      spiffeId: identity.spiffeId,
      expectedSpiffeId: expectedId,
      notBefore: identity.notBefore,
      notAfter: identity.notAfter,
      renewAt: identity.renewAt,
      renewsInSeconds: renewAtMs === undefined ? undefined : Math.round((renewAtMs - nowMs) / 1000),
      lastRenewal: identity.lastRenewal,
      verification,
      chain: chain.map((certificate) => certificateSummary(certificate, nowMs)),
    },
  };
}

function certificateSummary(certificate: ParsedCertificate, nowMs: number) {
  return {
    role: certificate.isCa ? (certificate.isSelfIssued ? 'trust anchor' : 'intermediate CA') : 'leaf',
    subject: certificate.subject,
    subjectAltNames: [
      ...certificate.uris.map((uri) => `URI:${uri}`),
      ...certificate.dnsNames.map((dns) => `DNS:${dns}`),
    ],
    issuer: certificate.issuer,
    serialNumber: certificate.serialNumber,
    notBefore: isoSeconds(certificate.notBeforeMs),
    notAfter: isoSeconds(certificate.notAfterMs),
    expiresInSeconds: Math.round((certificate.notAfterMs - nowMs) / 1000),
    publicKey: certificate.publicKeyAlgorithm,
    fingerprintSha256: certificate.fingerprintSha256,
  };
}

export function renderIdentity(name: string, view: IdentityView): string {
  const { json, nowMs } = view;
  const renewal = json.lastRenewal;
  const lines = [`${name}  ${json.spiffeId ?? '(no certificate yet)'}\n`];
  lines.push(
    renderFields([
      [
        'verified',
        json.verification.ok
          ? `chains to the mesh's trust bundle, good until ${json.verification.validUntil}`
          : `NO: ${json.verification.code}: ${json.verification.message}`,
      ],
      ...(json.renewAt
        ? [
            [
              'renews',
              `${json.renewAt.replace(/\.\d{3}Z$/, 'Z')} (${json.renewsInSeconds! >= 0 ? `in ${formatDuration(json.renewsInSeconds! * 1000)}` : `OVERDUE by ${formatDuration(-json.renewsInSeconds! * 1000)}`})`,
            ] as const,
          ]
        : []),
      ...(renewal?.result
        ? [
            [
              'last renewal',
              `${renewal.result}${renewal.at ? ` at ${renewal.at.replace(/\.\d{3}Z$/, 'Z')}` : ''}${renewal.error?.message ? `: ${renewal.error.message}` : ''}`,
            ] as const,
          ]
        : []),
    ]),
  );
  for (const [index, certificate] of view.chain.entries()) {
    const summary = json.chain[index]!;
    lines.push(`\nCertificate ${index + 1} of ${view.chain.length} (${summary.role})\n`);
    lines.push(
      renderFields([
        ['subject', summary.subject || '(empty)'],
        ['SANs', summary.subjectAltNames.join(', ') || '(none)'],
        ['issuer', summary.issuer],
        ['serial', colonHex(summary.serialNumber)],
        ['valid', `${summary.notBefore} to ${summary.notAfter}`],
        ['', describeValidity(certificate.notBeforeMs, certificate.notAfterMs, nowMs)],
        ['key', summary.publicKey],
        ['SHA-256', colonHex(summary.fingerprintSha256)],
      ]),
    );
  }
  return lines.join('');
}

/** One insertion, deletion, substitution or swap of neighbours turns `a` into `b` (not equal). */
function isOneEditApart(a: string, b: string): boolean {
  if (a === b || Math.abs(a.length - b.length) > 1) return false;
  let start = 0;
  while (start < a.length && a[start] === b[start]) start++;
  const restA = a.slice(start);
  const restB = b.slice(start);
  return (
    restA.slice(1) === restB.slice(1) ||
    restA.slice(1) === restB ||
    restA === restB.slice(1) ||
    (restA.length >= 2 && restA[0] === restB[1] && restA[1] === restB[0] && restA.slice(2) === restB.slice(2))
  );
}
