import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import { createIssuer, createTrustAnchor } from '../pki/index.ts';
import { CA_FILES, readCaDirectory, writeCaDirectory } from '../store/index.ts';

export interface MeshCa {
  readonly isCreated: boolean;
  readonly trustDomain: string;
  readonly issuerNotAfterMs: number;
}

/**
 * The mesh's CA in `caDir`: created on the first `mutual up`, reused afterwards. A CA for another
 * trust domain, or a half-written one, is an error — never silently replaced, since every
 * certificate and every peer that trusts it would break.
 */
export async function ensureMeshCa(caDir: string, trustDomain: string, clock: Clock): Promise<MeshCa> {
  const hasIssuer = await exists(join(caDir, CA_FILES.issuerCertificate));
  if (!hasIssuer) {
    const anchor = await createTrustAnchor({ trustDomain, clock });
    const issuer = await createIssuer(anchor, { trustDomain, clock });
    // writeCaDirectory refuses to overwrite, so a partial CA directory is reported, not replaced.
    await writeCaDirectory(caDir, anchor, issuer);
    return { isCreated: true, trustDomain, issuerNotAfterMs: issuer.notAfterMs };
  }
  const { issuer } = await readCaDirectory(caDir, clock);
  if (issuer.trustDomain !== trustDomain) {
    throw new MutualError(
      'MUTUAL_MESH_CONFIG_INVALID',
      `the CA in ${caDir} is for trust domain ${issuer.trustDomain}, but the mesh file says ${trustDomain}; set trustDomain: ${issuer.trustDomain} or use another --state-dir (Mutual never replaces a CA)`,
    );
  }
  return { isCreated: false, trustDomain, issuerNotAfterMs: issuer.notAfterMs };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
