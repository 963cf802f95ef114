// A throwaway CA and a serving certificate for 127.0.0.1, made with the openssl CLI, for the
// fake HTTPS servers tests stand in for real ones with (e.g. a Kubernetes API server).
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface LocalServerPki {
  readonly caPem: string;
  readonly keyPem: Buffer;
  readonly certPem: Buffer;
}

/** Writes ca.{key,crt} and api.{key,crt} (CN=`serverName`, SAN IP:127.0.0.1) into `dir`. */
export async function createLocalServerPki(
  dir: string,
  caName: string,
  serverName: string,
): Promise<LocalServerPki> {
  const openssl = (args: string[]) => promisify(execFile)('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', `/CN=${caName}`]);
  await openssl(['req', ...ec, '-keyout', 'api.key', '-out', 'api.csr', '-subj', `/CN=${serverName}`]);
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await openssl([
    ...['x509', '-req', '-in', 'api.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-out', 'api.crt', '-days', '2', '-extfile', 'san.ext'],
  ]);
  return {
    caPem: await readFile(join(dir, 'ca.crt'), 'utf8'),
    keyPem: await readFile(join(dir, 'api.key')),
    certPem: await readFile(join(dir, 'api.crt')),
  };
}

export interface SelfSignedCertificate {
  readonly keyPem: Buffer;
  readonly certPem: string;
}

/**
 * Writes app.key and app.crt into `dir`: a self-signed ECDSA P-256 certificate for `commonName`
 * (with `dnsName` as its SAN when given), made by openssl as an app serving its own TLS has one.
 */
export async function createSelfSignedCertificate(
  dir: string,
  commonName: string,
  dnsName?: string,
): Promise<SelfSignedCertificate> {
  await promisify(execFile)(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'],
      ...['-keyout', 'app.key', '-out', 'app.crt', '-subj', `/CN=${commonName}`],
      ...(dnsName === undefined ? [] : ['-addext', `subjectAltName=DNS:${dnsName}`]),
    ],
    { cwd: dir },
  );
  return {
    keyPem: await readFile(join(dir, 'app.key')),
    certPem: await readFile(join(dir, 'app.crt'), 'utf8'),
  };
}
