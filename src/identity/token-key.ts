import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MutualError } from '../errors.ts';
import { makeDirectory } from '../store/index.ts';

export const JOIN_TOKEN_KEY_FILE = 'join-token.key';

/**
 * The ES256 key that signs join tokens, kept in the identity state directory (0600). Created on
 * first use; an existing key is never replaced, so tokens already handed out stay valid.
 */
export async function loadOrCreateJoinTokenKey(
  stateDir: string,
): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  const path = join(stateDir, JOIN_TOKEN_KEY_FILE);
  try {
    await makeDirectory(stateDir, 0o700);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOTDIR' || code === 'EEXIST' ? 'a file is in the way' : (error as Error).message;
    throw new MutualError(
      'MUTUAL_IO_WRITE_FAILED',
      `cannot create the state directory ${stateDir} (${reason}); give --state-dir a directory, or a path where one can be made`,
      { cause: error },
    );
  }
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  });
  try {
    await writeFile(path, pem, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new MutualError('MUTUAL_IO_WRITE_FAILED', `cannot write ${path}: ${(error as Error).message}`);
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(await readFile(path, 'utf8'));
  } catch (error) {
    throw new MutualError(
      'MUTUAL_PKI_KEY_MALFORMED',
      `${path} is not a readable private key; move it away to create a new one (tokens signed with it stop working)`,
      { cause: error },
    );
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new MutualError('MUTUAL_PKI_KEY_UNSUPPORTED', `${path} must be an ECDSA P-256 key (ES256)`);
  }
  return { privateKey, publicKey: createPublicKey(privateKey) };
}
