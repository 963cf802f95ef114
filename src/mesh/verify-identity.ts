import {
  createPeerVerifier,
  parseBundlePem,
  parseCertificatesPem,
  type SvidVerification,
} from '../pki/index.ts';

export type ChainVerdict = { ok: true; validUntilMs: number } | { ok: false; code: string; message: string };

/** Verifies a sidecar's chain (PEM) as a peer would: against the mesh's bundle, for its expected ID. */
export function verifyChainPem(
  chainPem: string | undefined,
  expectedId: string,
  bundlePem: string,
  nowMs: number,
): ChainVerdict {
  if (!chainPem) return { ok: false, code: 'NO_CERTIFICATE', message: 'the sidecar has no certificate yet' };
  try {
    const chain = parseCertificatesPem(chainPem, 'chain').map((certificate) => certificate.der);
    const bundle = parseBundlePem(bundlePem, '', 'bundle.pem');
    const result: SvidVerification = createPeerVerifier({ anchors: bundle.rootsDer }).verifySvid(chain, {
      expectedId,
      atMs: nowMs,
    });
    return result.ok
      ? { ok: true, validUntilMs: result.validUntilMs }
      : { ok: false, code: result.code, message: result.message };
  } catch (error) {
    return {
      ok: false,
      code: (error as { code?: string }).code ?? 'UNREADABLE',
      message: (error as Error).message,
    };
  }
}
