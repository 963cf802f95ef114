// The destination service `mutual up` runs: ready, and answering every meshed address with the
// identity its sidecar holds. Asking needs mTLS, so the check signs itself a short-lived SVID
// with the mesh CA in the state directory (as `mutual up`'s user can), held in memory only.
import { readFile } from 'node:fs/promises';
import { type RequestOptions, request } from 'node:https';
import type { SecureContext } from 'node:tls';
import { systemClock } from '../../clock.ts';
import { formatDuration } from '../../config/index.ts';
import { generateKeyPair, issueSvid, parseCertificatesPem, privateKeyToPem } from '../../pki/index.ts';
import { readCaDirectory } from '../../store/index.ts';
import { createMeshTls, type MeshTls, requireServerIdentity } from '../../tls/index.ts';
import { meshedAddresses } from '../destination-table.ts';
import type { MeshRuntime } from '../runtime.ts';
import { clockSkew, silence } from './mesh-checks.ts';
import { caInForce, isAnswer } from './rotation-checks.ts';
import {
  type CheckCategory,
  type CheckContext,
  type CheckResult,
  CheckSkipped,
  fail,
  ok,
  skip,
} from './types.ts';

const NOT_RECORDED =
  'runtime.json records no destination service (the mesh was started by an older mutual up)';

/** The runtime's destination service, or the skip that says why there is none. */
function destinationOf(context: CheckContext): NonNullable<MeshRuntime['destination']> | CheckResult {
  if (!context.runtime) return skip('no mesh is running');
  return context.runtime.destination ?? skip(NOT_RECORDED);
}

export const destinationServiceChecks: CheckCategory = {
  name: 'destination service',
  checks: [
    {
      description: 'destination service is reachable and ready',
      hint: 'transparent sidecars ask it whether an address is meshed and as whom; without it they send plain text, which STRICT servers refuse',
      fix: 'a stopped one resumes with the `kill -CONT` the message names; `mutual up` starts one that exited or stopped answering /live again by itself (after 1 s, backing off to 30 s), so one that stays down fails each time it starts: read its log (`mutual logs destination`), and restart the mesh (`mutual down && mutual up -f mesh.yaml`) once the cause is fixed',
      severity: 'error',
      async run(context) {
        const destination = destinationOf(context);
        if ('status' in destination) return destination;
        const answer = await context.adminGet(`${destination.adminUrl}/ready`);
        if (answer instanceof Error) {
          return fail(
            silence(
              destination.adminUrl,
              answer,
              'the destination service',
              destination,
              context.runtime?.liveness,
            ),
          );
        }
        return answer.status === 200
          ? ok(destination.apiUrl)
          : fail(`${destination.adminUrl}/ready answered ${answer.status}: ${answer.body.trim()}`);
      },
    },
    {
      description: 'destination service answers for every meshed service with its SPIFFE ID',
      hint: 'a sidecar told the wrong identity refuses the real server; told "not meshed", it sends plain text',
      fix: 'compare destinations.yaml in the state directory with mesh.yaml and read `mutual logs destination`; restart the mesh to rewrite it',
      severity: 'error',
      async run(context) {
        const destination = destinationOf(context);
        if ('status' in destination) return destination;
        // Not answering at all is the check above; asking it per address would only repeat that.
        const ready = await context.adminGet(`${destination.adminUrl}/ready`);
        if (ready instanceof Error)
          return skip(
            'the destination service does not answer (see "destination service is reachable and ready")',
          );
        // The client certificate is signed on this machine's clock; on another clock the service
        // refuses it, and each address failed 'socket hang up' with advice about destinations.yaml.
        const nowMs = context.clock.now();
        const date = typeof ready.headers.date === 'string' ? ready.headers.date : undefined;
        const skewMs = clockSkew(date, nowMs, nowMs);
        if (skewMs !== undefined && Math.abs(skewMs) > context.thresholds.maxClockSkewMs)
          return skip(
            `the destination service's clock is ${formatDuration(Math.abs(skewMs))} ${skewMs > 0 ? 'ahead of' : 'behind'} this machine's: a client certificate signed here is not valid to it, so it cannot be asked (see "identity service's clock agrees with this machine's")`,
          );
        const services = context.runtime!.services.filter((service) => meshedAddresses(service).length > 0);
        let meshTls: MeshTls;
        try {
          meshTls = await checkCredentials(context);
        } catch (error) {
          if (error instanceof CheckSkipped) return skip(error.message);
          return fail(
            `cannot make a client certificate from the mesh CA in ${context.paths.caDir}: ${(error as Error).message}`,
          );
        }
        return Promise.all(
          services.map(async (service) => {
            const wrong: string[] = [];
            for (const { address, port } of meshedAddresses(service)) {
              const target = `${address}:${port}`;
              try {
                const answer = await askDestination(destination, meshTls, target);
                if (answer.meshed !== true || answer.serverId !== service.spiffeId) {
                  wrong.push(
                    `${target}: ${answer.meshed === true ? `serverId ${answer.serverId}` : `not meshed (${answer.reason ?? 'no reason'})`}, expected ${service.spiffeId}`,
                  );
                }
              } catch (error) {
                wrong.push(`${target}: ${(error as Error).message}`);
              }
            }
            return wrong.length === 0
              ? ok('', service.name)
              : fail(wrong[0]!, service.name, wrong.length > 1 ? wrong.slice(1) : undefined);
          }),
        );
      },
    },
  ],
};

/**
 * A 5-minute SVID for the check itself, signed on this machine's real clock: it is shown to a
 * live process, whatever time the check is told to judge certificates at. Signed with the issuer
 * on disk, so only when that is the one in force; it trusts the roots in force (what the
 * destination service has), not bundle.pem, which the identity service may have refused.
 * CheckSkipped when the files cannot make one the destination service would accept: the issuer
 * and in-force checks say what is wrong with them, and advice about destinations.yaml would not.
 */
async function checkCredentials(context: CheckContext): Promise<MeshTls> {
  const inForce = await caInForce(context);
  let issuer: Awaited<ReturnType<typeof readCaDirectory>>['issuer'];
  try {
    ({ issuer } = await readCaDirectory(context.paths.caDir, systemClock));
  } catch (error) {
    throw new CheckSkipped(
      `cannot sign a client certificate with the CA in ${context.paths.caDir}: ${(error as Error).message} (see the trust anchor and issuer checks)`,
    );
  }
  if (isAnswer(inForce)) {
    const [onDisk] = parseCertificatesPem(issuer.certificatePem, 'issuer');
    if (onDisk?.fingerprintSha256 !== inForce.issuer.fingerprintSha256) {
      throw new CheckSkipped(
        `the issuer on disk is not the one the identity service signs with, so a client certificate from it is no test (see "identity service has the issuer and trust anchors on disk in force")`,
      );
    }
  }
  const keys = await generateKeyPair();
  const svid = await issueSvid(issuer, {
    spiffeId: `spiffe://${context.runtime!.trustDomain}/ns/mutual-system/sa/mutual-check`,
    publicKey: keys.publicKey,
    clock: systemClock,
    lifetimeMs: 5 * 60_000,
  });
  return createMeshTls(
    {
      spiffeId: svid.spiffeId,
      privateKeyPem: privateKeyToPem(keys.privateKey),
      certificateChainPem: svid.chainPem,
      trustBundlePem:
        isAnswer(inForce) && typeof inForce.trustBundle.pem === 'string'
          ? inForce.trustBundle.pem
          : await readFile(context.paths.bundle, 'utf8'),
      notBeforeMs: svid.notBeforeMs,
      notAfterMs: svid.notAfterMs,
    },
    systemClock,
  );
}

interface WireAnswer {
  readonly meshed?: boolean;
  readonly serverId?: string;
  readonly reason?: string;
}

/** GET /v1/destinations/<target> over mTLS, the service verified as its recorded SPIFFE ID. */
function askDestination(
  destination: NonNullable<MeshRuntime['destination']>,
  meshTls: MeshTls,
  target: string,
): Promise<WireAnswer> {
  const url = new URL(`/v1/destinations/${encodeURIComponent(target)}`, destination.apiUrl);
  // https hands these to tls.connect, which takes a whole secure context (its types leave it out).
  const options: RequestOptions & { secureContext: SecureContext } = {
    agent: false,
    timeout: 3000,
    secureContext: meshTls.clientContext,
    checkServerIdentity: requireServerIdentity(meshTls, destination.serverId, systemClock),
    minVersion: 'TLSv1.3',
  };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) {
          reject(new Error(`answered ${response.statusCode}: ${text.slice(0, 200)}`));
          return;
        }
        try {
          resolve(JSON.parse(text) as WireAnswer);
        } catch {
          reject(new Error(`answered something that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
    req.on('error', reject);
    req.end();
  });
}
