import { chmod, chown, copyFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import { createJoinTokenIssuer, loadOrCreateJoinTokenKey } from '../identity/index.ts';
import { DESTINATION_ACCOUNT, type MeshPlan } from './plan.ts';
import type { MeshPaths } from './runtime.ts';

/** Join tokens live a day; `mutual up` mints them again well before that. */
const TOKEN_TTL_MS = 24 * 3_600_000;

/**
 * Mints every service's join token (again every TOKEN_REFRESH_MS). Loopback: 0600 in tokens/.
 * netns: in the pod's directory, 0640 to its proxy's group, beside a copy of the trust bundle.
 * The destination service's token (mutual-system/destination) is 0600 in tokens/ either way.
 */
export async function createTokenWriter(
  plan: MeshPlan,
  paths: MeshPaths,
  clock: Clock,
): Promise<() => Promise<void>> {
  const key = await loadOrCreateJoinTokenKey(join(paths.stateDir, 'identity'));
  const issuer = createJoinTokenIssuer({ signingKey: key.privateKey, clock });
  const place = async (temporary: string, file: string, gid: number | undefined) => {
    if (gid !== undefined) await chown(temporary, 0, gid);
    await chmod(temporary, gid === undefined ? 0o600 : 0o640);
    await rename(temporary, file);
  };
  return async () => {
    const destinationToken = await issuer.mint({ ...DESTINATION_ACCOUNT, ttlMs: TOKEN_TTL_MS });
    const destinationFile = plan.destination.tokenFile;
    await writeFile(`${destinationFile}.tmp`, `${destinationToken}\n`, { mode: 0o600 });
    await place(`${destinationFile}.tmp`, destinationFile, undefined);
    for (const { service, tokenFile, pod, identityBundle } of plan.services) {
      const token = await issuer.mint({
        namespace: service.namespace,
        serviceAccount: service.serviceAccount,
        ttlMs: TOKEN_TTL_MS,
      });
      await writeFile(`${tokenFile}.tmp`, `${token}\n`, { mode: 0o600 });
      await place(`${tokenFile}.tmp`, tokenFile, pod?.proxyGid);
      if (identityBundle !== paths.bundle) {
        await copyFile(paths.bundle, `${identityBundle}.tmp`);
        await place(`${identityBundle}.tmp`, identityBundle, pod?.proxyGid);
      }
    }
  };
}
