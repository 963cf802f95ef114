// What the identity service has in force, as its admin port's `GET /ca` answers it: the issuer it
// signs with, the roots it serves, an anchor change it holds back and its last reload decisions.
// Certificates are public: no key, no token, nothing secret goes in here.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLoopbackIp } from '../ip/index.ts';
import { bundleToPem, parseCertificate } from '../pki/index.ts';
import type { CaWatcherStatus } from './ca-watcher.ts';

export interface CaCertificateSummary {
  readonly subject: string;
  readonly fingerprintSha256: string;
  readonly notAfter: string;
}

/** The JSON of `GET /ca` (docs: README, identity service). */
export interface CaStatusAnswer {
  readonly issuer: CaCertificateSummary & { readonly file: string };
  readonly trustBundle: {
    readonly file: string;
    readonly sequence: number;
    readonly roots: readonly CaCertificateSummary[];
    /** The roots as PEM, what the service serves at GET /v1/bundle. */
    readonly pem: string;
  };
  /** An anchor change refused for now because it drops a root still in use; applied at `until`. */
  readonly heldTrustBundle: {
    readonly until: string;
    readonly roots: readonly CaCertificateSummary[];
    readonly dropping: readonly CaCertificateSummary[];
    readonly message: string;
  } | null;
  /** Roots kept for certificates of earlier issuers, until they expire. */
  readonly rootsInUse: ReadonlyArray<CaCertificateSummary & { readonly until: string; readonly why: string }>;
  /** The last decision about changed files of each kind since the service started. */
  readonly lastReload: {
    readonly issuer: ReloadSummary | null;
    readonly trustAnchors: ReloadSummary | null;
  };
}

interface ReloadSummary {
  readonly result: 'accepted' | 'refused';
  readonly at: string;
  readonly code?: string;
  readonly message: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function summarizeCertificate(der: Uint8Array): CaCertificateSummary {
  const parsed = parseCertificate(der);
  return {
    subject: parsed.subject,
    fingerprintSha256: parsed.fingerprintSha256,
    notAfter: iso(parsed.notAfterMs),
  };
}

export function caStatusAnswer(status: CaWatcherStatus): CaStatusAnswer {
  const { state, held } = status;
  const reload = (what: 'issuer' | 'trust-anchors'): ReloadSummary | null => {
    const event = status.lastReload[what];
    return event
      ? {
          result: event.result,
          at: iso(event.atMs),
          ...(event.code ? { code: event.code } : {}),
          message: event.message,
        }
      : null;
  };
  return {
    issuer: {
      ...summarizeCertificate(new Uint8Array(state.issuer.certificate.rawData)),
      file: status.files.issuerCertificate,
    },
    trustBundle: {
      file: status.files.trustAnchors,
      sequence: state.bundle.sequence,
      roots: state.bundle.rootsDer.map(summarizeCertificate),
      pem: bundleToPem(state.bundle),
    },
    heldTrustBundle: held
      ? {
          until: iso(Math.ceil(held.untilMs / 1000) * 1000),
          roots: held.rootsDer.map(summarizeCertificate),
          dropping: held.droppingDer.map(summarizeCertificate),
          message: held.message,
        }
      : null,
    rootsInUse: status.rootsInUse.map((root) => ({
      ...summarizeCertificate(root.der),
      until: iso(Math.ceil(root.untilMs / 1000) * 1000),
      why: root.why,
    })),
    lastReload: { issuer: reload('issuer'), trustAnchors: reload('trust-anchors') },
  };
}

/**
 * A client on this machine: loopback, or one of this machine's own addresses (the admin port of a
 * `--isolation netns` mesh listens on the host's bridge address; a pod there comes from its own).
 */
function isFromThisMachine(request: IncomingMessage): boolean {
  const remote = request.socket.remoteAddress;
  return isLoopbackIp(remote) || (!!remote && remote === request.socket.localAddress);
}

/** The admin route `GET /ca`: JSON for clients on this machine, 403 for others. */
export function caStatusRoute(status: () => CaWatcherStatus) {
  return (request: IncomingMessage, response: ServerResponse) => {
    if (!isFromThisMachine(request)) {
      response
        .writeHead(403, { 'content-type': 'text/plain' })
        .end('/ca is only answered to clients on this machine (in Kubernetes: kubectl port-forward)\n');
      return;
    }
    response
      .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(`${JSON.stringify(caStatusAnswer(status()), null, 2)}\n`);
  };
}
