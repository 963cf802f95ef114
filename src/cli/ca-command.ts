import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { parseDurationWithin } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  DEFAULT_ANCHOR_LIFETIME_MS,
  DEFAULT_ISSUER_LIFETIME_MS,
  loadAuthority,
  parseBundlePem,
  privateKeyToPem,
} from '../pki/index.ts';
import { parseTrustDomain } from '../spiffe/index.ts';
import { CA_FILES, readTextFile, writeCaDirectory, writeNewFiles } from '../store/index.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { describeValidity, isoSeconds, renderFields, renderJson } from './render.ts';

const DAY_MS = 86_400_000;
/** A CA that expires within the hour is a typo (30m for 30 months) or breaks every workload soon. */
const CA_LIFETIME = { atLeast: '1h', atMost: '100y' };

interface CaCreateOptions {
  trustDomain: string;
  out: string;
  anchorLifetime: string;
  issuerLifetime: string;
  nameConstraint: boolean;
  keyAlgorithm: 'ecdsa-p256' | 'ecdsa-p384';
  output: OutputFormat;
}

export function registerCaCommand(program: Command, context: CliContext): void {
  const ca = program.command('ca').description('create and manage the trust anchor and issuer');
  ca.command('create')
    .description('create a trust anchor (root) and an issuer (intermediate) for a trust domain')
    .requiredOption('--trust-domain <name>', 'SPIFFE trust domain, e.g. cluster.local')
    .requiredOption('--out <dir>', 'directory to write the CA into (must not hold a CA already)')
    .option(
      '--anchor-lifetime <duration>',
      'trust anchor lifetime',
      `${DEFAULT_ANCHOR_LIFETIME_MS / DAY_MS}d`,
    )
    .addOption(issuerLifetimeOption())
    .addOption(noNameConstraintOption())
    .addOption(keyAlgorithmOption('key type of both CAs'))
    .addOption(outputOption())
    .action(async (options: CaCreateOptions) => {
      await createCa(options, context);
    });
  ca.command('issuer')
    .description(
      "create a new issuer under an existing trust anchor (rotating the issuer: the anchors, and so every workload's trust, stay the same)",
    )
    .requiredOption(
      '--ca <dir>',
      'the CA directory of `mutual ca create`: its trust-anchor.crt and trust-anchor.key sign',
    )
    .requiredOption(
      '--out <dir>',
      'directory for the new issuer.crt and issuer.key (must not hold them already)',
    )
    .addOption(issuerLifetimeOption())
    .addOption(noNameConstraintOption())
    .addOption(keyAlgorithmOption('key type of the issuer'))
    .addOption(outputOption())
    .action(async (options: CaIssuerOptions) => {
      await createIssuerUnderAnchor(options, context);
    });
}

interface CaIssuerOptions {
  ca: string;
  out: string;
  issuerLifetime: string;
  nameConstraint: boolean;
  keyAlgorithm: 'ecdsa-p256' | 'ecdsa-p384';
  output: 'text' | 'json';
}

/** What `-o json` says of an anchor or an issuer. */
const authoritySummary = (authority: CertificateAuthority) => ({
  subject: authority.certificate.subject,
  notBefore: isoSeconds(authority.notBeforeMs),
  notAfter: isoSeconds(authority.notAfterMs),
});

async function createIssuerUnderAnchor(options: CaIssuerOptions, context: CliContext): Promise<void> {
  const issuerLifetimeMs = parseDurationWithin(options.issuerLifetime, '--issuer-lifetime', CA_LIFETIME);
  const caDir = resolve(context.cwd, options.ca);
  const certificatePath = join(caDir, CA_FILES.anchorCertificate);
  const keyPath = join(caDir, CA_FILES.anchorKey);
  const anchor = loadAuthority({
    certificatePem: await readTextFile(certificatePath, 'trust anchor certificate'),
    privateKeyPem: await readTextFile(keyPath, 'trust anchor key (kept offline? bring it back for this)'),
    clock: context.clock,
    source: certificatePath,
    keySource: keyPath,
  });
  await assertAnchorInBundle(anchor, caDir, options.ca);
  const issuer = await createIssuer(anchor, {
    trustDomain: anchor.trustDomain,
    clock: context.clock,
    lifetimeMs: issuerLifetimeMs,
    keyAlgorithm: options.keyAlgorithm,
    isNameConstrained: options.nameConstraint,
  });
  const out = resolve(context.cwd, options.out);
  const paths = await writeNewFiles(out, [
    { name: CA_FILES.issuerCertificate, contents: issuer.certificatePem, isSecret: false },
    { name: CA_FILES.issuerKey, contents: privateKeyToPem(issuer.keys.privateKey), isSecret: true },
  ]);
  if (options.output === 'json') {
    context.write(
      renderJson({
        trustDomain: anchor.trustDomain,
        directory: out,
        trustAnchor: authoritySummary(anchor),
        issuer: { ...authoritySummary(issuer), isNameConstrained: options.nameConstraint },
        files: paths,
      }),
    );
    return;
  }
  const now = context.clock.now();
  const clamped = issuer.notAfterMs < now + issuerLifetimeMs - 120_000 ? ' (clamped to the anchor)' : '';
  context.write(`Created an issuer under the trust anchor ${anchor.certificate.subject} in ${out}\n`);
  context.write(
    renderFields([
      ['issuer', issuer.certificate.subject],
      [
        '',
        `${describeValidity(issuer.notBeforeMs, issuer.notAfterMs, now)} (${isoSeconds(issuer.notAfterMs)})${clamped}`,
      ],
      ['files', paths.map((path) => path.slice(out.length + 1)).join(', ')],
    ]),
  );
  context.write(
    `\nNext: give it to the identity service, which picks it up live (no restart); workloads move to it as they renew\n  cp ${join(options.out, CA_FILES.issuerKey)} ${join(options.out, CA_FILES.issuerCertificate)} ${join(options.ca, '')}\n`,
  );
}

/**
 * The anchor in a CA directory must be one of its bundle.pem's roots, which the identity service
 * trusts: after an anchor rotation (new root added, issuer switched, old root dropped, as the
 * README says) the directory still holds the old root's trust-anchor.crt and key, and an issuer
 * made under it would be refused by the identity service and by every peer. A directory without
 * bundle.pem (the anchor kept alone, offline) is not checked.
 */
async function assertAnchorInBundle(
  anchor: CertificateAuthority,
  caDir: string,
  caOption: string,
): Promise<void> {
  const bundlePath = join(caDir, CA_FILES.bundlePem);
  let bundleText: string;
  try {
    bundleText = await readFile(bundlePath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const bundle = parseBundlePem(bundleText, anchor.trustDomain, bundlePath);
  const anchorDer = Buffer.from(anchor.certificate.rawData);
  if (bundle.rootsDer.some((root) => root.equals(anchorDer))) return;
  const anchorPath = join(caOption, CA_FILES.anchorCertificate);
  throw new MutualError(
    'MUTUAL_PKI_ANCHOR_NOT_IN_BUNDLE',
    `${anchorPath} (${anchor.certificate.subject}) is not one of the ${bundle.rootsDer.length} root(s) in ${join(caOption, CA_FILES.bundlePem)}, which the identity service trusts: an issuer made under it would be refused by the identity service and by every peer. After an anchor rotation the directory still holds the old root: copy the new root's trust-anchor.crt and trust-anchor.key (from the directory \`mutual ca create\` wrote them to) into ${join(caOption, '')}, or pass that directory as --ca; nothing was written`,
    { detail: { anchor: anchor.certificate.subject, bundle: bundlePath } },
  );
}

/** The issuer's options, shared by `ca create` and `ca issuer`. */
const issuerLifetimeOption = () =>
  new Option('--issuer-lifetime <duration>', 'issuer lifetime (never beyond the anchor)').default(
    `${DEFAULT_ISSUER_LIFETIME_MS / DAY_MS}d`,
  );
const noNameConstraintOption = () =>
  new Option('--no-name-constraint', 'do not restrict the issuer to URIs of this trust domain');
const keyAlgorithmOption = (description: string) =>
  new Option('--key-algorithm <algorithm>', description)
    .choices(['ecdsa-p256', 'ecdsa-p384'])
    .default('ecdsa-p256');

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');
}

async function createCa(options: CaCreateOptions, context: CliContext): Promise<void> {
  const trustDomain = parseTrustDomain(options.trustDomain);
  const anchorLifetimeMs = parseDurationWithin(options.anchorLifetime, '--anchor-lifetime', CA_LIFETIME);
  const issuerLifetimeMs = parseDurationWithin(options.issuerLifetime, '--issuer-lifetime', CA_LIFETIME);
  const dir = resolve(context.cwd, options.out);
  const anchor = await createTrustAnchor({
    trustDomain,
    clock: context.clock,
    lifetimeMs: anchorLifetimeMs,
    keyAlgorithm: options.keyAlgorithm,
  });
  const issuer = await createIssuer(anchor, {
    trustDomain,
    clock: context.clock,
    lifetimeMs: issuerLifetimeMs,
    keyAlgorithm: options.keyAlgorithm,
    isNameConstrained: options.nameConstraint,
  });
  const { paths } = await writeCaDirectory(dir, anchor, issuer);
  const now = context.clock.now();
  if (options.output === 'json') {
    context.write(
      renderJson({
        trustDomain,
        directory: dir,
        trustAnchor: authoritySummary(anchor),
        issuer: { ...authoritySummary(issuer), isNameConstrained: options.nameConstraint },
        files: paths,
      }),
    );
    return;
  }
  const clamped = issuer.notAfterMs < now + issuerLifetimeMs - 120_000 ? ' (clamped to the anchor)' : '';
  context.write(`Created a CA for trust domain ${trustDomain} in ${dir}\n`);
  context.write(
    renderFields([
      ['trust anchor', `${anchor.certificate.subject}`],
      [
        '',
        `${describeValidity(anchor.notBeforeMs, anchor.notAfterMs, now)} (${isoSeconds(anchor.notAfterMs)})`,
      ],
      ['issuer', `${issuer.certificate.subject}`],
      [
        '',
        `${describeValidity(issuer.notBeforeMs, issuer.notAfterMs, now)} (${isoSeconds(issuer.notAfterMs)})${clamped}`,
      ],
      ['', options.nameConstraint ? `may sign only spiffe://${trustDomain}/... IDs` : 'not name-constrained'],
      ['files', paths.map((path) => path.slice(dir.length + 1)).join(', ')],
      ['', 'private keys are written 0600; keep trust-anchor.key offline once the issuer exists'],
    ]),
  );
  context.write(
    `\nNext: issue a workload certificate\n  npx mutual cert issue --ca ${options.out} --spiffe-id spiffe://${trustDomain}/ns/default/sa/web --out web\n`,
  );
}
