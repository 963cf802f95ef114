// Where a CA rotation stands: the identity service's `GET /ca` (what it signs with and trusts)
// against the files in STATE/ca (what check's CA checks read), and the sidecars' certificates and
// bundles against what is in force. The service refuses files it cannot use and keeps the old
// ones, so the files alone can look right while it signs with the previous issuer.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { CaCertificateSummary, CaStatusAnswer } from '../../identity/index.ts';
import { type ParsedCertificate, parseCertificatesPem } from '../../pki/index.ts';
import { CA_FILES } from '../../store/index.ts';
import { type Check, type CheckContext, type CheckResult, fail, ok, plural, skip } from './types.ts';

const NOT_RUNNING = 'no mesh is running';
const IDENTITY_SILENT =
  'the identity service does not answer (see "identity service is reachable and ready")';

const short = (fingerprint: string) => fingerprint.slice(0, 16);
const named = (certificate: { subject: string; fingerprintSha256: string }) =>
  `${certificate.subject || '(no subject)'} (SHA-256 ${short(certificate.fingerprintSha256)}…)`;

/** The identity service's `GET /ca`, or the result to return when it cannot be had. */
export async function caInForce(context: CheckContext): Promise<CaStatusAnswer | CheckResult> {
  const runtime = context.runtime;
  if (!runtime) return skip(NOT_RUNNING);
  if ((await context.adminGet(`${runtime.identity.adminUrl}/ready`)) instanceof Error)
    return skip(IDENTITY_SILENT);
  const answer = await context.adminGet(`${runtime.identity.adminUrl}/ca`);
  if (answer instanceof Error) return skip(IDENTITY_SILENT);
  if (answer.status === 404) {
    return skip(
      'the identity service does not tell what it has in force (GET /ca; started by an older mutual: restart the mesh to see it)',
    );
  }
  try {
    if (answer.status !== 200) throw new Error(`answered ${answer.status}: ${answer.body.trim()}`);
    const parsed = JSON.parse(answer.body) as CaStatusAnswer;
    if (!parsed.issuer?.fingerprintSha256 || !Array.isArray(parsed.trustBundle?.roots))
      throw new Error('the answer has no issuer or trust bundle');
    return parsed;
  } catch (error) {
    return fail(`${runtime.identity.adminUrl}/ca: ${(error as Error).message}`);
  }
}

export const isAnswer = (value: CaStatusAnswer | CheckResult): value is CaStatusAnswer => 'issuer' in value;

async function readCertificates(path: string): Promise<ParsedCertificate[]> {
  return parseCertificatesPem(await readFile(path, 'utf8'), path);
}

const sameRoots = (
  a: readonly { fingerprintSha256: string }[],
  b: readonly { fingerprintSha256: string }[],
) =>
  a.length === b.length &&
  a.every((root) => b.some((other) => other.fingerprintSha256 === root.fingerprintSha256));

function missingFrom<T extends { fingerprintSha256: string }>(
  roots: readonly T[],
  from: readonly { fingerprintSha256: string }[],
): T[] {
  return roots.filter((root) => !from.some((other) => other.fingerprintSha256 === root.fingerprintSha256));
}

/** Identity service category: are the files on disk the ones in force? */
export const caInForceCheck: Check = {
  description: 'identity service has the issuer and trust anchors on disk in force',
  hint: 'the identity service refuses a changed CA file it cannot use and keeps signing with the one it had: the files alone look right while a rotation has stalled',
  fix: 'read why in `mutual logs identity` (the line "ca reload: … refused"), then fix the file it names: an issuer whose key matches, not expired, under a root of bundle.pem (`mutual ca issuer`); keep an old root in bundle.pem until the certificates under it expire',
  severity: 'error',
  async run(context) {
    const inForce = await caInForce(context);
    if (!isAnswer(inForce)) return inForce;
    const issuerPath = join(context.paths.caDir, CA_FILES.issuerCertificate);
    let onDisk: { issuer: ParsedCertificate; roots: ParsedCertificate[] };
    try {
      const [[issuer], roots] = await Promise.all([
        readCertificates(issuerPath),
        readCertificates(context.paths.bundle),
      ]);
      if (!issuer) throw new Error(`${issuerPath} holds no certificate`);
      onDisk = { issuer, roots };
    } catch (error) {
      return skip(`${(error as Error).message} (see the trust anchor and issuer checks)`);
    }
    const results: CheckResult[] = [];
    const notes: string[] = [];
    const logs = '`mutual logs identity`';
    if (onDisk.issuer.fingerprintSha256 !== inForce.issuer.fingerprintSha256) {
      const reload = inForce.lastReload.issuer;
      const details = [
        `on disk:  ${named(onDisk.issuer)}`,
        `in force: ${named(inForce.issuer)}, expires ${inForce.issuer.notAfter}`,
      ];
      results.push(
        reload?.result === 'refused'
          ? fail(
              `the identity service refused ${issuerPath}${reload.code ? ` [${reload.code}]` : ''} at ${reload.at} and still signs with the previous issuer; why: ${logs}`,
              basename(issuerPath),
              details,
            )
          : fail(
              `${issuerPath} is not in force yet: the identity service still signs with the previous issuer (it reads changed files within a second, and every 30 s); run check again, or see ${logs}`,
              basename(issuerPath),
              details,
            ),
      );
    }
    if (!sameRoots(onDisk.roots, inForce.trustBundle.roots)) {
      const held = inForce.heldTrustBundle;
      if (held && sameRoots(onDisk.roots, held.roots)) {
        notes.push(
          `${basename(context.paths.bundle)} is held until ${held.until}: it drops ${held.dropping.map(named).join(', ')}, which certificates from an earlier issuer still chain to; it is applied by itself then`,
        );
      } else {
        const reload = inForce.lastReload.trustAnchors;
        const details = [
          ...missingFrom(onDisk.roots, inForce.trustBundle.roots).map(
            (root) => `not trusted yet: ${named(root)}`,
          ),
          ...missingFrom(inForce.trustBundle.roots, onDisk.roots).map(
            (root) => `still trusted, gone from the file: ${named(root)}`,
          ),
        ];
        results.push(
          reload?.result === 'refused'
            ? fail(
                `the identity service refused ${context.paths.bundle}${reload.code ? ` [${reload.code}]` : ''} at ${reload.at} and still serves the previous ${plural(inForce.trustBundle.roots.length, 'root')}; why: ${logs}`,
                basename(context.paths.bundle),
                details,
              )
            : fail(
                `${context.paths.bundle} is not in force yet: the identity service still serves the previous ${plural(inForce.trustBundle.roots.length, 'root')} (it reads changed files within a second, and every 30 s); run check again, or see ${logs}`,
                basename(context.paths.bundle),
                details,
              ),
        );
      }
    }
    if (results.length > 0) return results;
    return ok(notes.join('; '));
  },
};

interface SidecarCa {
  readonly service: string;
  /** The certificate of the issuer that signed the sidecar's certificate, when its chain has it. */
  readonly issuer: ParsedCertificate | undefined;
  readonly renewAt: string | undefined;
  readonly notAfter: string | undefined;
  readonly missingRoots: readonly CaCertificateSummary[];
}

/** Proxies category: how far the sidecars have moved to the issuer and roots in force. */
export const rotationProgressCheck: Check = {
  description: 'sidecars have certificates from the issuer in force and trust every root it serves',
  hint: 'after an issuer switch sidecars move to the new issuer as they renew; new roots reach them through the trust bundle. A sidecar without a root refuses peers whose certificates chain to it',
  fix: 'nothing while they renew; a sidecar past its renewal or missing a root for long: `mutual logs SERVICE --proxy`',
  severity: 'info',
  async run(context) {
    const inForce = await caInForce(context);
    if (!isAnswer(inForce)) return inForce;
    const runtime = context.runtime!;
    const sidecars: SidecarCa[] = [];
    await Promise.all(
      runtime.services.map(async (service) => {
        const answer = await context.proxyIdentity(service.name);
        if (!answer.ok || !answer.identity.certificateChainPem) return;
        try {
          const chain = parseCertificatesPem(answer.identity.certificateChainPem, 'chain');
          const bundle = parseCertificatesPem(answer.identity.trustBundlePem ?? '', 'bundle');
          sidecars.push({
            service: service.name,
            issuer: chain[1],
            renewAt: answer.identity.renewAt,
            notAfter: answer.identity.notAfter,
            missingRoots: missingFrom(inForce.trustBundle.roots, bundle),
          });
        } catch {
          // "certificate is valid and chained to the trust bundle" says what is wrong with it.
        }
      }),
    );
    if (sidecars.length === 0) return skip('no sidecar tells its certificate (see "sidecar is ready")');
    const order = new Map(runtime.services.map((service, index) => [service.name, index]));
    sidecars.sort((a, b) => order.get(a.service)! - order.get(b.service)!);
    const onEarlier = sidecars.filter(
      (sidecar) => sidecar.issuer?.fingerprintSha256 !== inForce.issuer.fingerprintSha256,
    );
    const missing = sidecars.filter((sidecar) => sidecar.missingRoots.length > 0);
    const roots = plural(inForce.trustBundle.roots.length, 'root');
    const counted = `${sidecars.length - onEarlier.length} of ${plural(sidecars.length, 'sidecar')} on the issuer in force`;
    const silent = runtime.services.filter((service) => !sidecars.some((s) => s.service === service.name));
    const unseen =
      silent.length > 0
        ? `; not seen: ${silent.map((service) => service.name).join(', ')} (no certificate to read)`
        : '';
    if (onEarlier.length === 0 && missing.length === 0)
      return ok(`${counted}, each trusts the ${roots} it serves${unseen}`);
    const latest = (times: ReadonlyArray<string | undefined>) =>
      times
        .filter((time): time is string => !!time)
        .sort()
        .at(-1);
    const details: string[] = [];
    if (onEarlier.length > 0) {
      details.push(`issuer in force: ${named(inForce.issuer)}`);
      const byIssuer = new Map<string, SidecarCa[]>();
      for (const sidecar of onEarlier) {
        const key = sidecar.issuer?.fingerprintSha256 ?? '';
        byIssuer.set(key, [...(byIssuer.get(key) ?? []), sidecar]);
      }
      for (const group of byIssuer.values()) {
        const issuer = group[0]!.issuer;
        details.push(
          `${group.map((sidecar) => sidecar.service).join(', ')}: from ${issuer ? `another issuer, ${named(issuer)}` : 'an issuer their chain does not include'}; renew${group.length === 1 ? 's' : ''} by ${latest(group.map((sidecar) => sidecar.renewAt)) ?? '?'} (valid until ${latest(group.map((sidecar) => sidecar.notAfter)) ?? '?'})`,
        );
      }
    }
    for (const sidecar of missing) {
      details.push(
        `${sidecar.service}: does not trust ${sidecar.missingRoots.map(named).join(', ')} yet (the bundle in force has ${roots})`,
      );
    }
    const message =
      onEarlier.length > 0
        ? `${counted}; the rest renew by ${latest(onEarlier.map((sidecar) => sidecar.renewAt)) ?? '?'}`
        : `${counted}; ${plural(missing.length, 'sidecar')} missing a root of the bundle in force`;
    return fail(
      `${
        onEarlier.length > 0 && missing.length > 0
          ? `${message}; ${plural(missing.length, 'sidecar')} missing a root of the bundle in force`
          : message
      }${unseen}`,
      undefined,
      details,
    );
  },
};
