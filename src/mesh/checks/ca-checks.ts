import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDuration } from '../../config/index.ts';
import {
  isSameKey,
  type ParsedCertificate,
  parseCertificatesPem,
  parsePrivateKeyPem,
} from '../../pki/index.ts';
import { CA_FILES } from '../../store/index.ts';
import { type CheckCategory, type CheckContext, type CheckResult, fail, ok } from './types.ts';

const SUPPORTED_KEYS = /^(EC P-256|EC P-384|RSA (2048|3072|4096))/;

async function readPem(path: string, what: string): Promise<ParsedCertificate[]> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new Error(
      `cannot read ${what} ${path}: ${error.code === 'ENOENT' ? 'it does not exist' : error.message}`,
    );
  });
  return parseCertificatesPem(text, path);
}

const anchorsOf = (context: CheckContext) => readPem(context.paths.bundle, 'trust bundle');
const issuerOf = async (context: CheckContext) =>
  (await readPem(join(context.paths.caDir, CA_FILES.issuerCertificate), 'issuer certificate'))[0]!;

/** Runs `each` per certificate; a read failure is one failed result. */
async function perCertificate(
  load: () => Promise<ParsedCertificate[]>,
  each: (certificate: ParsedCertificate, label: string) => CheckResult,
): Promise<CheckResult[]> {
  let certificates: ParsedCertificate[];
  try {
    certificates = await load();
  } catch (error) {
    return [fail((error as Error).message)];
  }
  return certificates.map((certificate) =>
    each(certificate, certificate.subject || certificate.fingerprintSha256.slice(0, 16)),
  );
}

function validity(certificate: ParsedCertificate, label: string, nowMs: number): CheckResult {
  if (nowMs < certificate.notBeforeMs) {
    return fail(
      `not valid until ${new Date(certificate.notBeforeMs).toISOString()} (in ${formatDuration(certificate.notBeforeMs - nowMs)}); is this machine's clock right?`,
      label,
    );
  }
  if (nowMs > certificate.notAfterMs) {
    return fail(
      `expired ${formatDuration(nowMs - certificate.notAfterMs)} ago (${new Date(certificate.notAfterMs).toISOString()})`,
      label,
    );
  }
  return ok();
}

function lifetimeLeft(certificate: ParsedCertificate, label: string, context: CheckContext): CheckResult {
  const leftMs = certificate.notAfterMs - context.clock.now();
  const thresholdMs = context.thresholds.expiryWarningMs;
  return leftMs >= thresholdMs
    ? ok()
    : fail(
        `expires in ${formatDuration(Math.max(0, leftMs))}, less than ${formatDuration(thresholdMs)} (${new Date(certificate.notAfterMs).toISOString()})`,
        label,
      );
}

export const trustAnchorChecks: CheckCategory = {
  name: 'trust anchors',
  checks: [
    {
      description: 'trust anchors can be read',
      hint: 'every sidecar verifies its peers against these roots; without them nothing can be trusted',
      fix: 'restore ca/bundle.pem from a backup of the state directory (Mutual never makes a new CA on its own)',
      severity: 'error',
      async run(context) {
        try {
          const anchors = await anchorsOf(context);
          return anchors.length > 0
            ? ok(`${anchors.length} root${anchors.length === 1 ? '' : 's'}`)
            : fail('the trust bundle holds no certificate');
        } catch (error) {
          return fail((error as Error).message);
        }
      },
    },
    {
      description: 'trust anchors use a supported algorithm',
      hint: 'peers refuse chains signed with keys they do not support',
      fix: 'rotate to an ECDSA P-256 anchor: `mutual ca create` and add it to the bundle',
      severity: 'error',
      run: (context) =>
        perCertificate(
          () => anchorsOf(context),
          (certificate, label) =>
            SUPPORTED_KEYS.test(certificate.publicKeyAlgorithm)
              ? ok()
              : fail(
                  `has a ${certificate.publicKeyAlgorithm} key; supported are EC P-256/P-384 and RSA ≥ 2048`,
                  label,
                ),
        ),
    },
    {
      description: 'trust anchors are within their validity period',
      hint: 'an expired anchor makes every certificate under it untrusted: the whole mesh stops',
      fix: 'create a new anchor and issuer (`mutual ca create`) and roll them out',
      severity: 'error',
      run: (context) =>
        perCertificate(
          () => anchorsOf(context),
          (c, label) => validity(c, label, context.clock.now()),
        ),
    },
    {
      description: 'trust anchors are valid for at least the warning period',
      hint: 'rotating an anchor takes planning: add the new root to the bundle well before the old one expires',
      fix: 'plan an anchor rotation now: `mutual ca create`, add the new root to bundle.pem, then switch the issuer',
      severity: 'warning',
      run: (context) =>
        perCertificate(
          () => anchorsOf(context),
          (c, label) => lifetimeLeft(c, label, context),
        ),
    },
  ],
};

export const issuerChecks: CheckCategory = {
  name: 'issuer',
  checks: [
    {
      description: 'issuer certificate and key can be read and belong together',
      hint: 'the identity service signs every workload certificate with this key',
      fix: 'restore issuer.crt and issuer.key from a backup of the state directory',
      severity: 'error',
      async run(context) {
        try {
          const issuer = await issuerOf(context);
          const keyPath = join(context.paths.caDir, CA_FILES.issuerKey);
          const key = parsePrivateKeyPem(await readFile(keyPath, 'utf8'), keyPath);
          return isSameKey(key.publicKey, issuer.publicKey)
            ? ok(issuer.subject)
            : fail(`${keyPath} is not the key of the issuer certificate`);
        } catch (error) {
          return fail((error as Error).message);
        }
      },
    },
    {
      description: 'issuer is within its validity period',
      hint: 'an expired issuer cannot sign: every workload loses its certificate at its next renewal',
      fix: 'issue a new issuer under the current anchor and restart the identity service',
      severity: 'error',
      run: (context) =>
        perCertificate(
          async () => [await issuerOf(context)],
          (c, label) => validity(c, label, context.clock.now()),
        ),
    },
    {
      description: 'issuer is valid for at least the warning period',
      hint: 'workload certificates are clamped to the issuer: they get shorter and shorter as it nears its end',
      fix: 'rotate the issuer before it expires',
      severity: 'warning',
      run: (context) =>
        perCertificate(
          async () => [await issuerOf(context)],
          (c, label) => lifetimeLeft(c, label, context),
        ),
    },
    {
      description: 'issuer chains to a current trust anchor',
      hint: 'certificates it signs are only trusted if the issuer itself is',
      fix: "put the issuer's root into ca/bundle.pem, or issue a new issuer under a root that is there",
      severity: 'error',
      async run(context) {
        try {
          // One after the other, so the same missing file is reported each time.
          const issuer = await issuerOf(context);
          const anchors = await anchorsOf(context);
          const nowMs = context.clock.now();
          const parent = anchors.find(
            (anchor) => issuer.native.checkIssued(anchor.native) && issuer.native.verify(anchor.publicKey),
          );
          if (!parent)
            return fail(
              `no root in ${context.paths.bundle} signed the issuer (its issuer is ${issuer.issuer})`,
            );
          if (nowMs > parent.notAfterMs)
            return fail(`the root that signed the issuer, ${parent.subject}, has expired`);
          return ok(parent.subject);
        } catch (error) {
          return fail((error as Error).message);
        }
      },
    },
  ],
};
