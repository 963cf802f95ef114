import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDuration } from '../../config/index.ts';
import {
  isSameKey,
  type ParsedCertificate,
  parseCertificatesPem,
  parsePrivateKeyPem,
} from '../../pki/index.ts';
import { CA_FILES } from '../../store/index.ts';
import {
  type CheckCategory,
  type CheckContext,
  type CheckResult,
  CheckSkipped,
  fail,
  failOrSkip,
  ok,
  skip,
} from './types.ts';

const SUPPORTED_KEYS = /^(EC P-256|EC P-384|RSA (2048|3072|4096))/;

/** PEM text and where it came from (a path, a ConfigMap key), for messages. */
export interface PemSource {
  readonly pem: string;
  readonly where: string;
}

/**
 * Where the CA checks read the anchors and the issuer: the state directory's files (`mutual up`)
 * or a cluster's ConfigMap and Secret. Each throws an Error saying what could not be read (a
 * CheckSkipped when it cannot even look).
 */
export interface CaSource {
  anchors(context: CheckContext): Promise<PemSource>;
  issuer(context: CheckContext): Promise<{
    readonly certificate: PemSource;
    /** Read only by the check that needs the key. */
    key(): Promise<PemSource>;
    /** Set when something renews the issuer on its own (cert-manager): no early-expiry warning. */
    readonly renewedBy?: string;
  }>;
}

/** The fix of each CA check, in the words of where the CA lives. */
export interface TrustAnchorFixes {
  readonly read: string;
  readonly algorithm: string;
  readonly validity: string;
  readonly lifetime: string;
}
export interface IssuerFixes {
  readonly read: string;
  readonly validity: string;
  readonly lifetime: string;
  readonly chain: string;
}

async function readPem(path: string, what: string): Promise<PemSource> {
  const pem = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new Error(
      `cannot read ${what} ${path}: ${error.code === 'ENOENT' ? 'it does not exist' : error.message}`,
    );
  });
  return { pem, where: path };
}

/**
 * No state directory at all is no mesh, not a lost CA: the CA checks are skipped (the mesh check
 * says what to do) rather than failed with "restore it from a backup".
 */
async function assertStateDirectory(context: CheckContext): Promise<void> {
  const isThere = await stat(context.paths.stateDir).then(
    () => true,
    () => false,
  );
  if (!isThere)
    throw new CheckSkipped(`no state directory ${context.paths.stateDir}: no mesh was started with it`);
}

/** The CA of `mutual up`: ca/bundle.pem, ca/issuer.crt and ca/issuer.key in the state directory. */
export const stateDirectoryCa: CaSource = {
  async anchors(context) {
    await assertStateDirectory(context);
    return readPem(context.paths.bundle, 'trust bundle');
  },
  async issuer(context) {
    await assertStateDirectory(context);
    const certificate = await readPem(
      join(context.paths.caDir, CA_FILES.issuerCertificate),
      'issuer certificate',
    );
    const keyPath = join(context.paths.caDir, CA_FILES.issuerKey);
    return { certificate, key: () => readFile(keyPath, 'utf8').then((pem) => ({ pem, where: keyPath })) };
  },
};

const certificatesOf = (source: PemSource) => parseCertificatesPem(source.pem, source.where);

/**
 * What a check that needs the anchors or the issuer returns when they cannot be read: a skip
 * naming why. The "can be read" check fails with the fix; failing here too would add advice for a
 * certificate nobody could look at (a truncated bundle.pem was "rotate to an ECDSA P-256 anchor").
 */
const unreadable = (error: unknown): CheckResult => skip((error as Error).message);

/** Runs `each` per certificate; a read failure is one skipped result (see `unreadable`). */
async function perCertificate(
  load: () => Promise<ParsedCertificate[]>,
  each: (certificate: ParsedCertificate, label: string) => CheckResult,
): Promise<CheckResult[]> {
  let certificates: ParsedCertificate[];
  try {
    certificates = await load();
  } catch (error) {
    return [unreadable(error)];
  }
  return certificates.map((certificate) =>
    each(certificate, certificate.subject || certificate.fingerprintSha256.slice(0, 16)),
  );
}

/** Fails when `nowMs` is outside the certificate's validity period. */
export function validity(certificate: ParsedCertificate, label: string, nowMs: number): CheckResult {
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

/** Fails when the certificate expires within the warning period; skips one already expired. */
export function lifetimeLeft(
  certificate: ParsedCertificate,
  label: string,
  context: CheckContext,
): CheckResult {
  const leftMs = certificate.notAfterMs - context.clock.now();
  const thresholdMs = context.thresholds.expiryWarningMs;
  // Already expired is the validity check's error; a warning "expires in 0s" beside it misread the past.
  if (leftMs < 0) return skip('expired already (see the validity check)', label);
  return leftMs >= thresholdMs
    ? ok()
    : fail(
        `expires in ${formatDuration(Math.max(0, leftMs))}, less than ${formatDuration(thresholdMs)} (${new Date(certificate.notAfterMs).toISOString()})`,
        label,
      );
}

/** The trust anchor checks over any CA source. */
export function trustAnchorCategory(name: string, source: CaSource, fix: TrustAnchorFixes): CheckCategory {
  const anchorsOf = async (context: CheckContext) => certificatesOf(await source.anchors(context));
  return {
    name,
    checks: [
      {
        description: 'trust anchors can be read',
        hint: 'every sidecar verifies its peers against these roots; without them nothing can be trusted',
        fix: fix.read,
        severity: 'error',
        async run(context) {
          try {
            const anchors = await anchorsOf(context);
            if (anchors.length === 0) return fail('the trust bundle holds no certificate');
            if (anchors.length === 1) return ok('1 root');
            // Named, when more than one: a root added from another CA widens who is trusted, and
            // showed only as '2 roots'.
            return ok(
              `${anchors.length} roots: ${anchors
                .map(
                  (anchor) =>
                    `${anchor.subject || anchor.fingerprintSha256.slice(0, 16)} (until ${isoDate(anchor.notAfterMs)})`,
                )
                .join('; ')}`,
            );
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'trust anchors use a supported algorithm',
        hint: 'peers refuse chains signed with keys they do not support',
        fix: fix.algorithm,
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
        fix: fix.validity,
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
        fix: fix.lifetime,
        severity: 'warning',
        async run(context) {
          let read: PemSource;
          let anchors: ParsedCertificate[];
          try {
            read = await source.anchors(context);
            anchors = certificatesOf(read);
          } catch (error) {
            return [unreadable(error)];
          }
          const step = await rotationStep(anchors, read.where, source, context);
          return anchors.map((anchor) => {
            const label = anchor.subject || anchor.fingerprintSha256.slice(0, 16);
            const result = lifetimeLeft(anchor, label, context);
            return result.status === 'fail' && step
              ? { ...result, message: step(anchor, result.message) }
              : result;
          });
        },
      },
    ],
  };
}

const signed = (child: ParsedCertificate, parent: ParsedCertificate) =>
  child.native.checkIssued(parent.native) && child.native.verify(parent.publicKey);

const isoDate = (ms: number) => new Date(ms).toISOString();

/**
 * Where an anchor rotation stands, as a message for each root that expires within the warning
 * period: undefined when no root of the bundle lasts longer (no rotation begun; the fix says how).
 * With a lasting root there, the next step is to switch the issuer to one under it while the
 * issuer still chains to the expiring root, and to drop that root once it no longer does: the
 * fix alone repeated "add the new root to the bundle" to an operator who had done so.
 */
async function rotationStep(
  anchors: readonly ParsedCertificate[],
  where: string,
  source: CaSource,
  context: CheckContext,
): Promise<((anchor: ParsedCertificate, message: string) => string) | undefined> {
  const nowMs = context.clock.now();
  const lasting = anchors.filter((anchor) => anchor.notAfterMs - nowMs >= context.thresholds.expiryWarningMs);
  const newest = lasting.reduce<ParsedCertificate | undefined>(
    (best, anchor) => (!best || anchor.notAfterMs > best.notAfterMs ? anchor : best),
    undefined,
  );
  if (!newest) return undefined;
  const issuer = await source
    .issuer(context)
    .then((read) => certificatesOf(read.certificate)[0])
    .catch(() => undefined);
  const under = `${newest.subject || newest.fingerprintSha256.slice(0, 16)} (valid until ${isoDate(newest.notAfterMs)})`;
  return (anchor, message) => {
    if (issuer && signed(issuer, anchor))
      return `${message}; rotation under way: ${where} also holds ${under}, next step: switch the issuer to one under that root`;
    if (issuer && lasting.some((root) => signed(issuer, root)))
      return `${message}; rotation under way: the issuer chains to ${under} now, last step: remove this root from ${where}`;
    return `${message}; ${where} also holds ${under}`;
  };
}

/** The issuer checks over any CA source. */
export function issuerCategory(name: string, source: CaSource, fix: IssuerFixes): CheckCategory {
  const issuerOf = async (context: CheckContext) => {
    const issuer = await source.issuer(context);
    return { ...issuer, parsed: certificatesOf(issuer.certificate)[0]! };
  };
  return {
    name,
    checks: [
      {
        description: 'issuer certificate and key can be read and belong together',
        hint: 'the identity service signs every workload certificate with this key',
        fix: fix.read,
        severity: 'error',
        async run(context) {
          try {
            const issuer = await issuerOf(context);
            const key = await issuer.key();
            const privateKey = parsePrivateKeyPem(key.pem, key.where);
            return isSameKey(privateKey.publicKey, issuer.parsed.publicKey)
              ? ok(issuer.parsed.subject)
              : fail(`${key.where} is not the key of the issuer certificate`);
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'issuer is within its validity period',
        hint: 'an expired issuer cannot sign: every workload loses its certificate at its next renewal',
        fix: fix.validity,
        severity: 'error',
        async run(context) {
          // A new issuer is the fix, unless its root has expired too: none can be made under it.
          let deadRoot: ParsedCertificate | undefined;
          const results = await perCertificate(
            async () => {
              const { parsed } = await issuerOf(context);
              const anchors = await source
                .anchors(context)
                .then(certificatesOf)
                .catch(() => []);
              deadRoot = anchors.find(
                (anchor) => signed(parsed, anchor) && anchor.notAfterMs < context.clock.now(),
              );
              return [parsed];
            },
            (c, label) => validity(c, label, context.clock.now()),
          );
          return results.map((result) =>
            result.status === 'fail' && deadRoot
              ? {
                  ...result,
                  message: `${result.message}; its root, ${deadRoot.subject || deadRoot.fingerprintSha256.slice(0, 16)}, has expired too, so no new issuer can be made under it: replace the whole CA (see "trust anchors are within their validity period")`,
                }
              : result,
          );
        },
      },
      {
        description: 'issuer is valid for at least the warning period',
        hint: 'workload certificates are clamped to the issuer: they get shorter and shorter as it nears its end',
        fix: fix.lifetime,
        severity: 'warning',
        async run(context) {
          let renewedBy: string | undefined;
          // The root that signed it, when that root too expires within the period: a new issuer
          // under it is clamped to its expiry, so the issuer fix alone cannot clear this warning.
          let endingRoot: ParsedCertificate | undefined;
          const results = await perCertificate(
            async () => {
              const issuer = await issuerOf(context);
              renewedBy = issuer.renewedBy;
              const anchors = await source
                .anchors(context)
                .then(certificatesOf)
                .catch(() => []);
              endingRoot = anchors.find(
                (anchor) =>
                  signed(issuer.parsed, anchor) &&
                  anchor.notAfterMs - context.clock.now() < context.thresholds.expiryWarningMs,
              );
              return [issuer.parsed];
            },
            (c, label) => lifetimeLeft(c, label, context),
          );
          if (renewedBy) return skip(`${renewedBy} renews it`);
          return results.map((result) =>
            result.status === 'fail' && endingRoot
              ? {
                  ...result,
                  message: `${result.message}; its root, ${endingRoot.subject || endingRoot.fingerprintSha256.slice(0, 16)}, expires ${isoDate(endingRoot.notAfterMs)} and an issuer cannot outlive its root: a new issuer under it ends then too, rotate the trust anchor first (see "trust anchors are valid for at least the warning period")`,
                }
              : result,
          );
        },
      },
      {
        description: 'issuer chains to a current trust anchor',
        hint: 'certificates it signs are only trusted if the issuer itself is',
        fix: fix.chain,
        severity: 'error',
        async run(context) {
          try {
            // One after the other, so the same missing file is reported each time.
            const { parsed: issuer } = await issuerOf(context);
            const anchorsSource = await source.anchors(context);
            const anchors = certificatesOf(anchorsSource);
            const nowMs = context.clock.now();
            const parent = anchors.find((anchor) => signed(issuer, anchor));
            if (!parent)
              return fail(
                `no root in ${anchorsSource.where} signed the issuer (its issuer is ${issuer.issuer})`,
              );
            if (nowMs > parent.notAfterMs)
              return fail(
                `the root that signed the issuer, ${parent.subject}, has expired (see "trust anchors are within their validity period")`,
              );
            return ok(parent.subject);
          } catch (error) {
            return unreadable(error);
          }
        },
      },
    ],
  };
}

/** The CA checks of `mutual up`'s state directory. */
export const trustAnchorChecks = trustAnchorCategory('trust anchors', stateDirectoryCa, {
  read: 'restore ca/bundle.pem from a backup of the state directory (Mutual never makes a new CA on its own)',
  algorithm: 'rotate to an ECDSA P-256 anchor: `mutual ca create` and add it to the bundle',
  validity:
    'nothing under an expired root can be trusted, so replace the whole CA: `mutual ca create --trust-domain TRUST_DOMAIN --out newca`, copy every file of newca into STATE_DIR/ca/ (bundle.pem too), then restart the mesh: `mutual down && mutual up -f mesh.yaml`',
  lifetime:
    'rotate the anchor, one step at a time (each is picked up live; the message says which comes next): `mutual ca create --trust-domain TRUST_DOMAIN --out newca` and add newca/trust-anchor.crt to STATE_DIR/ca/bundle.pem; then copy newca/issuer.crt, issuer.key, trust-anchor.crt and trust-anchor.key into STATE_DIR/ca/; then remove the old root from bundle.pem (the identity service holds that until certificates from the old issuer expire)',
});

export const issuerChecks = issuerCategory('issuer', stateDirectoryCa, {
  read: 'restore issuer.crt and issuer.key from a backup of the state directory; without one, make a new issuer under the anchor (`mutual ca issuer --ca STATE_DIR/ca --out next`) and copy its issuer.crt and issuer.key into STATE_DIR/ca/ (picked up live)',
  validity:
    'make a new issuer under the current anchor (`mutual ca issuer --ca STATE_DIR/ca --out next`) and copy its issuer.crt and issuer.key into STATE_DIR/ca/: the identity service picks them up live',
  lifetime:
    'rotate the issuer before it expires: `mutual ca issuer --ca STATE_DIR/ca --out next`, then copy its files into STATE_DIR/ca/ (picked up live)',
  chain:
    "put the issuer's root into ca/bundle.pem, or make a new issuer under a root that is there (`mutual ca issuer`)",
});
