import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDuration, parseDurationWithin } from '../config/index.ts';
import { errorCatalog, isMutualError, MutualError } from '../errors.ts';
import { assertIssuerUnderAnchors } from '../identity/index.ts';
import {
  bundleToPem,
  type CertificateAuthority,
  createPeerVerifier,
  DEFAULT_SVID_SKEW_MS,
  describeKey,
  type GeneralNameEntry,
  generateKeyPair,
  isSameKey,
  issueSvid,
  type ParsedCertificate,
  parseBundle,
  parseCertificate,
  parseCertificatesPem,
  parsePrivateKeyPem,
  privateKeyToPem,
  type TrustBundle,
} from '../pki/index.ts';
import { parseSpiffeId, tryParseSpiffeId } from '../spiffe/index.ts';
import {
  CA_FILES,
  MAX_INPUT_FILE_BYTES,
  readCaDirectory,
  readFileBytes,
  readTextFile,
  writeNewFiles,
} from '../store/index.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { colonHex, describeValidity, isoSeconds, renderFields, renderJson } from './render.ts';

export function registerCertCommand(program: Command, context: CliContext): void {
  const cert = program.command('cert').description('issue, inspect and verify certificates');
  cert
    .command('issue')
    .description('issue an X.509-SVID (key + certificate chain + trust bundle) from a CA directory')
    .requiredOption('--ca <dir>', 'CA directory made by `mutual ca create`')
    .requiredOption('--spiffe-id <id>', 'the identity, e.g. spiffe://cluster.local/ns/default/sa/web')
    .requiredOption(
      '--out <dir>',
      'directory for cert.pem, key.pem and bundle.pem (must not hold them already)',
    )
    .option('--lifetime <duration>', 'certificate lifetime (at most 90d)', '24h')
    .option(
      '--skew <duration>',
      'clock skew allowance added to both ends of the validity',
      `${DEFAULT_SVID_SKEW_MS / 1000}s`,
    )
    .option('--dns <name>', 'also add a DNS SAN, for clients outside the mesh (repeatable)', collect, [])
    .addOption(outputOption())
    .action(async (options: IssueOptions) => issue(options, context));
  cert
    .command('inspect')
    .description('show every certificate in a PEM or DER file: identity, issuer, validity, key, fingerprints')
    .argument('<file>', 'certificate, chain or bundle file; - reads stdin')
    .addOption(outputOption())
    .action(async (file: string, options: { output: OutputFormat }) => inspect(file, options, context));
  cert
    .command('verify')
    .description(
      'verify a certificate chain against a trust bundle as a peer would; exit 1 with the reason if invalid',
    )
    .requiredOption('--bundle <file>', 'trust bundle (PEM or SPIFFE JWKS)')
    .requiredOption(
      '--cert <file>',
      'the peer certificate, followed by its intermediates (PEM), or one DER certificate',
    )
    .option('--spiffe-id <id>', 'require exactly this SPIFFE ID')
    .option(
      '--key <file>',
      "also check that this private key is the certificate's own (PEM: PKCS#8, SEC1 or PKCS#1)",
    )
    .option('--at <time>', 'verify at this time instead of now: ISO 8601, or relative like +30d or -1h')
    .option('--skew <duration>', 'clock skew allowance', '0s')
    .addOption(outputOption())
    .action(async (options: VerifyOptions) => verify(options, context));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface IssueOptions {
  ca: string;
  spiffeId: string;
  out: string;
  lifetime: string;
  skew: string;
  dns: string[];
  output: OutputFormat;
}

async function issue(options: IssueOptions, context: CliContext): Promise<void> {
  // Limits of issueSvid (90d, skew 1h), checked here to report them as the flags were written.
  const lifetimeMs = parseDurationWithin(options.lifetime, '--lifetime', {
    atLeast: '1s',
    atMost: '90d',
    code: 'MUTUAL_PKI_LIFETIME_INVALID',
  });
  const skewMs = parseDurationWithin(options.skew, '--skew', {
    atLeast: '0s',
    atMost: '1h',
    code: 'MUTUAL_PKI_LIFETIME_INVALID',
  });
  const caDir = resolve(context.cwd, options.ca);
  // An issuer made elsewhere (openssl, cfssl, easy-rsa) may name no trust domain: it is the one
  // --spiffe-id names, as `mutual identity serve --trust-domain` would be told.
  const { issuer, bundle } = await readCaDirectory(caDir, context.clock, {
    trustDomainIfUnnamed: tryParseSpiffeId(options.spiffeId)?.trustDomain,
  });
  assertBundleTrustsIssuer(issuer, bundle, caDir, context.clock.now());
  const keys = await generateKeyPair();
  const svid = await issueSvid(issuer, {
    spiffeId: options.spiffeId,
    publicKey: keys.publicKey,
    clock: context.clock,
    lifetimeMs,
    skewMs,
    dnsNames: options.dns,
  });
  const dir = resolve(context.cwd, options.out);
  const paths = await writeNewFiles(dir, [
    { name: 'cert.pem', contents: svid.chainPem, isSecret: false },
    { name: 'key.pem', contents: privateKeyToPem(keys.privateKey), isSecret: true },
    { name: 'bundle.pem', contents: bundleToPem(bundle), isSecret: false },
  ]);
  const result = {
    spiffeId: svid.spiffeId,
    serialNumber: svid.serialNumber,
    notBefore: isoSeconds(svid.notBeforeMs),
    notAfter: isoSeconds(svid.notAfterMs),
    isClampedToIssuer: svid.isClampedToIssuer,
    files: paths,
  };
  if (options.output === 'json') {
    context.write(renderJson(result));
    return;
  }
  const now = context.clock.now();
  context.write(`Issued ${svid.spiffeId}\n`);
  context.write(
    renderFields([
      [
        'valid',
        `${result.notBefore} to ${result.notAfter} (${describeValidity(svid.notBeforeMs, svid.notAfterMs, now)})`,
      ],
      ...(svid.isClampedToIssuer
        ? [['', 'shortened so as not to outlive the issuer; renew the issuer soon'] as const]
        : []),
      ['serial', colonHex(svid.serialNumber)],
      ['files', `${paths.join(', ')} (key.pem is 0600)`],
    ]),
  );
}

/**
 * The bundle.pem written beside the certificate must verify it: a CA directory whose bundle.pem
 * came from another CA would hand out credentials no peer accepts.
 */
function assertBundleTrustsIssuer(
  issuer: CertificateAuthority,
  bundle: TrustBundle,
  caDir: string,
  nowMs: number,
): void {
  const bundlePath = join(caDir, CA_FILES.bundlePem);
  try {
    assertIssuerUnderAnchors(issuer, bundle, nowMs, join(caDir, CA_FILES.issuerCertificate));
  } catch (error) {
    if (!isMutualError(error, 'MUTUAL_IDENTITY_CA_RELOAD_REFUSED')) throw error;
    throw new MutualError(
      'MUTUAL_PKI_CHAIN_UNTRUSTED',
      `${error.message.replace(/; add its root to the anchors first$/, '')} in ${bundlePath}; a certificate issued from it would not verify against that bundle: put the issuer's root in bundle.pem, or use the CA directory the issuer was made in`,
      { cause: error },
    );
  }
}

function isPem(text: string): boolean {
  return text.includes('-----BEGIN');
}

/** Certificates from PEM (any number of blocks) or one DER certificate. */
function readCertificates(bytes: Buffer, source: string): ParsedCertificate[] {
  const text = bytes.toString('utf8');
  if (text.trim() === '') {
    throw new MutualError(
      'MUTUAL_PKI_PEM_MALFORMED',
      `${source} is empty: give a file holding the certificate (PEM, or one DER certificate)`,
    );
  }
  if (isPem(text)) {
    try {
      return parseCertificatesPem(text, source);
    } catch (error) {
      throw isMutualError(error, 'MUTUAL_PKI_PEM_WRONG_TYPE')
        ? (privateKeyInstead(text, source) ?? error)
        : error;
    }
  }
  try {
    return [parseCertificate(bytes)];
  } catch (error) {
    throw new MutualError(
      'MUTUAL_PKI_PEM_MALFORMED',
      `${source}: neither PEM ("-----BEGIN CERTIFICATE-----") nor a DER certificate`,
      { cause: error },
    );
  }
}

const KEY_FORMATS: Readonly<Record<string, string>> = {
  'PRIVATE KEY': 'PKCS#8',
  'EC PRIVATE KEY': 'SEC1',
  'RSA PRIVATE KEY': 'PKCS#1',
};

/**
 * The error for a file that holds a private key alone, saying what key it is and how to check it
 * against a certificate ('expected CERTIFICATE, found PRIVATE KEY' said neither); undefined for
 * anything else.
 */
function privateKeyInstead(text: string, source: string): MutualError | undefined {
  const type = /-----BEGIN ((?:EC |RSA )?PRIVATE KEY)-----/.exec(text)?.[1];
  if (type === undefined || text.includes('-----BEGIN CERTIFICATE-----')) return undefined;
  let algorithm: string;
  try {
    algorithm = describeKey(parsePrivateKeyPem(text, source).publicKey).label;
  } catch {
    return undefined;
  }
  return new MutualError(
    'MUTUAL_PKI_PEM_WRONG_TYPE',
    `${source} holds a private key (${KEY_FORMATS[type]}, ${algorithm}), not a certificate; whether it is a certificate's own: \`mutual cert verify --bundle BUNDLE --cert CERT --key ${source}\``,
  );
}

/**
 * `kubectl get secret … | base64 -d | mutual cert inspect -`, as openssl and step read a pipe:
 * bytes, so that a DER certificate comes through, bounded as a file is.
 */
async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_INPUT_FILE_BYTES) {
      process.stdin.destroy();
      throw new MutualError(
        'MUTUAL_IO_READ_FAILED',
        `stdin holds more than ${MAX_INPUT_FILE_BYTES} bytes; a certificate chain is a few kilobytes: is it the right input?`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function inspect(file: string, options: { output: OutputFormat }, context: CliContext): Promise<void> {
  const bytes =
    file === '-' ? await readStdin() : await readFileBytes(resolve(context.cwd, file), 'certificate file');
  const certificates = readCertificates(bytes, file === '-' ? '<stdin>' : file);
  const now = context.clock.now();
  const views = certificates.map((certificate, index) =>
    certificateView(certificate, index, certificates.length, now),
  );
  if (options.output === 'json') {
    context.write(renderJson(views));
    return;
  }
  for (const [index, view] of views.entries()) {
    const certificate = certificates[index]!;
    context.write(`${index > 0 ? '\n' : ''}Certificate ${index + 1} of ${views.length} (${view.role})\n`);
    context.write(
      renderFields([
        ['subject', view.subject || '(empty)'],
        ['SPIFFE ID', view.spiffeId ?? '(none)'],
        ['SANs', view.subjectAltNames.length > 0 ? view.subjectAltNames.join(', ') : '(none)'],
        ['issuer', view.issuer],
        ['serial', colonHex(view.serialNumber)],
        ['valid', `${view.notBefore} to ${view.notAfter}`],
        ['', describeValidity(certificate.notBeforeMs, certificate.notAfterMs, now)],
        ['key', view.publicKey],
        [
          'CA',
          view.isCa ? `yes${view.pathLength === undefined ? '' : `, path length ${view.pathLength}`}` : 'no',
        ],
        ['key usage', view.keyUsage?.join(', ') ?? '(not restricted)'],
        ['ext key usage', view.extKeyUsage?.join(', ') ?? '(not restricted)'],
        ...(view.nameConstraints === undefined
          ? []
          : ([['constraints', describeNameConstraints(view.nameConstraints)]] as const)),
        ['SHA-256', colonHex(view.fingerprintSha256)],
      ]),
    );
  }
}

const GENERAL_NAME_PREFIXES: Record<GeneralNameEntry['type'], string> = {
  uri: 'URI',
  dns: 'DNS',
  email: 'email',
  ip: 'IP',
  directoryName: 'DirName',
  other: 'othername',
};

function generalName(name: GeneralNameEntry): string {
  return `${GENERAL_NAME_PREFIXES[name.type]}:${name.value}`;
}

function describeNameConstraints(constraints: { permitted: string[]; excluded: string[] } | null): string {
  if (constraints === null) return 'none (may sign any name)';
  return [
    ...(constraints.permitted.length > 0 ? [`names permitted: ${constraints.permitted.join(', ')}`] : []),
    ...(constraints.excluded.length > 0 ? [`names excluded: ${constraints.excluded.join(', ')}`] : []),
  ].join('; ');
}

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '2.5.29.37.0': 'any',
};

function certificateView(certificate: ParsedCertificate, index: number, count: number, nowMs: number) {
  const role = certificate.isCa
    ? certificate.isSelfIssued
      ? 'trust anchor'
      : 'intermediate CA'
    : index === 0
      ? 'leaf'
      : 'leaf (out of place)';
  const uris = certificate.uris;
  const spiffeId = uris.length === 1 && tryParseSpiffeId(uris[0]!) ? uris[0] : undefined;
  return {
    index,
    count,
    role,
    subject: certificate.subject,
    issuer: certificate.issuer,
    spiffeId,
    subjectAltNames: [
      ...certificate.uris.map((uri) => `URI:${uri}`),
      ...certificate.dnsNames.map((dns) => `DNS:${dns}`),
      ...certificate.ipAddresses.map((ip) => `IP:${ip}`),
      ...certificate.emails.map((email) => `email:${email}`),
    ],
    serialNumber: certificate.serialNumber,
    notBefore: isoSeconds(certificate.notBeforeMs),
    notAfter: isoSeconds(certificate.notAfterMs),
    isExpired: nowMs > certificate.notAfterMs,
    // The text says "not valid for another …"; JSON readers that looked at isExpired alone took such a certificate for good.
    isNotYetValid: nowMs < certificate.notBeforeMs,
    expiresInSeconds: Math.round((certificate.notAfterMs - nowMs) / 1000),
    publicKey: certificate.publicKeyAlgorithm,
    isCa: certificate.isCa,
    pathLength: certificate.pathLength,
    keyUsage: certificate.keyUsage ? [...certificate.keyUsage] : undefined,
    extKeyUsage: certificate.extKeyUsage?.map((oid) => EKU_NAMES[oid] ?? oid),
    // What a CA may sign (`ca create` restricts its issuer to spiffe://<td>/...; --no-name-constraint
    // does not), as `step certificate inspect` and openssl show it: inspect could not tell them apart.
    ...(certificate.isCa
      ? {
          nameConstraints: certificate.nameConstraints
            ? {
                permitted: certificate.nameConstraints.permitted?.map(generalName) ?? [],
                excluded: certificate.nameConstraints.excluded?.map(generalName) ?? [],
              }
            : null,
        }
      : {}),
    fingerprintSha256: certificate.fingerprintSha256,
  };
}

interface VerifyOptions {
  bundle: string;
  cert: string;
  spiffeId?: string;
  key?: string;
  at?: string;
  skew: string;
  output: OutputFormat;
}

async function verify(options: VerifyOptions, context: CliContext): Promise<void> {
  // At most the skew issuance allows (1h): 100y would make every expiry check pass.
  const skewMs = parseDurationWithin(options.skew, '--skew', { atLeast: '0s', atMost: '1h' });
  // A malformed --spiffe-id is the user's mistake, not the peer's: say so instead of "mismatch".
  if (options.spiffeId !== undefined) parseSpiffeId(options.spiffeId);
  const atMs = options.at === undefined ? context.clock.now() : parseTime(options.at, context.clock.now());
  const bundlePath = resolve(context.cwd, options.bundle);
  const bundle = parseBundle(await readTextFile(bundlePath, 'trust bundle'), '', options.bundle);
  const certBytes = await readFileBytes(resolve(context.cwd, options.cert), 'certificate');
  const certificates = readCertificates(certBytes, options.cert);
  const chain = certificates.map((certificate) => certificate.der);
  const verifier = createPeerVerifier({ anchors: bundle.rootsDer, clock: context.clock, skewMs });
  const verdict = verifier.verifySvid(chain, {
    ...(options.spiffeId === undefined ? {} : { expectedId: options.spiffeId }),
    atMs,
  });
  // A key of another certificate passes every chain check and fails only where it is used (the
  // sidecar refuses the pair): say so here, where `mutual cert verify` is the advice.
  const result =
    options.key === undefined || !verdict.ok
      ? verdict
      : await keyVerdict(verdict, certificates[0]!, options.key, options.cert, context);
  if (options.output === 'json') {
    context.write(
      renderJson(
        result.ok
          ? {
              valid: true,
              spiffeId: result.spiffeId.uri,
              validUntil: isoSeconds(result.validUntilMs),
              at: isoSeconds(atMs),
            }
          : { valid: false, code: result.code, message: result.message, at: isoSeconds(atMs) },
      ),
    );
  } else if (result.ok) {
    context.write(`${result.spiffeId.uri}\n`);
    context.write(
      renderFields([
        ['valid', `at ${isoSeconds(atMs)}; the chain is good until ${isoSeconds(result.validUntilMs)}`],
        ['chain', result.path.map((certificate) => certificate.subject || '(leaf)').join(' <- ')],
        ...(options.key === undefined ? [] : [['key', `${options.key} is the leaf's own`] as const]),
      ]),
    );
  } else {
    // A file that starts with a CA but holds a leaf further down is a chain in the wrong order.
    const leafAt = certificates.findIndex((certificate) => !certificate.isCa);
    const order =
      result.code === 'MUTUAL_PKI_CA_AS_LEAF' && leafAt > 0
        ? `\n  certificate ${leafAt + 1} of ${certificates.length} in ${options.cert} is the leaf: put the leaf first, then its intermediates (the order \`mutual cert issue\` writes)`
        : '';
    // DER holds one certificate: a mesh leaf's intermediate cannot be in it.
    const der =
      result.code === 'MUTUAL_PKI_CHAIN_UNTRUSTED' && !isPem(certBytes.toString('utf8'))
        ? `\n  ${options.cert} is DER, one certificate without its intermediates: give the PEM chain (the cert.pem \`mutual cert issue\` writes)`
        : '';
    context.writeError(
      `invalid: ${result.code}\n  ${result.message}${order}${der}\n  hint: ${errorCatalog[result.code].action}\n`,
    );
  }
  if (!result.ok) context.setExitCode(1);
}

/** The chain's verdict, or a failure when the key at `keyFile` is not the leaf's. */
async function keyVerdict<T extends { ok: true }>(
  verdict: T,
  leaf: ParsedCertificate,
  keyFile: string,
  certFile: string,
  context: CliContext,
): Promise<T | { ok: false; code: 'MUTUAL_PKI_KEY_MISMATCH'; message: string }> {
  const key = parsePrivateKeyPem(await readTextFile(resolve(context.cwd, keyFile), 'private key'), keyFile);
  if (isSameKey(key.publicKey, leaf.publicKey)) return verdict;
  return {
    ok: false,
    code: 'MUTUAL_PKI_KEY_MISMATCH',
    message: `${keyFile} is not the key of the first certificate in ${certFile} (${leaf.uris[0] ?? (leaf.subject || 'its leaf')}, serial ${leaf.serialNumber}): it holds the ${describeKey(key.publicKey).label} key of another certificate; give the key.pem written with this cert.pem`,
  };
}

const YEAR_0_MS = Date.parse('0000-01-01T00:00:00Z');
const YEAR_9999_END_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** ISO 8601 time, or an offset from now such as +30d or -1h. */
function parseTime(text: string, nowMs: number): number {
  const relative = /^([+-])(.+)$/.exec(text.trim());
  const ms = relative
    ? nowMs + (relative[1] === '+' ? 1 : -1) * parseDuration(relative[2]!, '--at')
    : Date.parse(text);
  // Certificates hold times from year 0 to 9999 (GeneralizedTime); -99999999999d is no date at all.
  if (Number.isNaN(ms) || ms < YEAR_0_MS || ms > YEAR_9999_END_MS) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--at ${JSON.stringify(text)} is not a time${Number.isNaN(ms) ? '' : ' between the years 0 and 9999'}: use ISO 8601 (2027-01-31T12:00:00Z) or an offset like +30d or -1h`,
    );
  }
  return ms;
}
