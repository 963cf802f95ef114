import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDurationWithin, parseListenAddress } from '../config/index.ts';
import { isMutualError, MutualError } from '../errors.ts';
import {
  appendTokenRevocation,
  assertServiceAccountFlags,
  createJoinTokenIssuer,
  DEFAULT_AUTH_FAILURE_LIMIT,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_RATE_LIMIT,
  describeJoinToken,
  IN_CLUSTER_FILES,
  inClusterApiServerUrl,
  isTokenId,
  JOIN_TOKEN_KEY_FILE,
  loadOrCreateJoinTokenKey,
  MAX_DEFAULT_CONNECTIONS,
  startIdentityService,
  type TokenReviewConfig,
} from '../identity/index.ts';
import { DEFAULT_SVID_LIFETIME_MS, DEFAULT_SVID_SKEW_MS } from '../pki/index.ts';
import { parseTrustDomain } from '../spiffe/index.ts';
import { type CaFilePaths, caFilePaths, readBoundedText, readTextFile } from '../store/index.ts';
import type { CliContext } from './context.ts';

const DEFAULT_STATE_DIR = '.mutual';

export function registerIdentityCommand(program: Command, context: CliContext): void {
  const identity = program
    .command('identity')
    .description('the identity service: signs workload certificates');
  identity
    .command('serve')
    .description('run the identity service (HTTPS API for certify and the trust bundle, plus an admin port)')
    .option(
      '--ca <dir>',
      'CA directory made by `mutual ca create` (issuer.crt, issuer.key, bundle.pem); watched, changes apply without a restart',
    )
    .option('--issuer-cert <file>', 'issuer certificate (PEM, chain after it), instead of <ca>/issuer.crt')
    .option('--issuer-key <file>', 'issuer private key, instead of <ca>/issuer.key')
    .option(
      '--trust-anchors <file>',
      'roots to trust and publish (PEM with one or more roots, or SPIFFE JWKS), instead of <ca>/bundle.pem',
    )
    .option(
      '--trust-domain <name>',
      "trust domain to sign for when the issuer certificate names none (an issuer made for Linkerd, Istio or cert-manager); must match the issuer's spiffe:// URI SAN when it has one",
    )
    .option('--state-dir <dir>', 'where the join-token key and the audit log live', DEFAULT_STATE_DIR)
    .option('--listen <address>', 'API address', '127.0.0.1:8443')
    .option('--admin-listen <address>', 'admin address (/live, /ready, /metrics, /ca)', '127.0.0.1:9990')
    .option(
      '--lifetime <duration>',
      'lifetime of workload certificates',
      `${DEFAULT_SVID_LIFETIME_MS / 3_600_000}h`,
    )
    .option(
      '--skew <duration>',
      'clock skew allowance on both ends of the validity',
      `${DEFAULT_SVID_SKEW_MS / 1000}s`,
    )
    .option(
      '--rate-limit <per-second>',
      'certify requests regained per second, per identity',
      String(DEFAULT_RATE_LIMIT.perSecond),
    )
    .option(
      '--rate-burst <count>',
      'certify requests one identity may make at once',
      String(DEFAULT_RATE_LIMIT.burst),
    )
    .option(
      '--auth-failure-limit <per-second>',
      'failed authentications (bad tokens) regained per second, per client address',
      String(DEFAULT_AUTH_FAILURE_LIMIT.perSecond),
    )
    .option(
      '--auth-failure-burst <count>',
      'failed authentications one client address may make at once; then every request from it gets 429 with Retry-After',
      String(DEFAULT_AUTH_FAILURE_LIMIT.burst),
    )
    .option('--client-timeout <duration>', "deadline for a client's TLS handshake, headers and body", '10s')
    .option(...MAX_CONNECTIONS_PER_ADDRESS_OPTION)
    .option(...maxConnectionsOption('held bundle long poll'))
    .option(
      '--token-review-url <url>',
      'also accept Kubernetes ServiceAccount tokens, checked with a TokenReview at this API server URL (`in-cluster`: from the pod environment)',
    )
    .option(
      '--token-review-ca <file>',
      "PEM roots to verify the API server with (in-cluster: the pod's ca.crt)",
    )
    .option(
      '--token-review-token-file <file>',
      "bearer token the identity service presents to the API server, re-read per request (in-cluster: the pod's token)",
    )
    .action(async (options: ServeOptions) => serve(options, context));
  const token = identity.command('token').description('local join tokens (for meshes without Kubernetes)');
  token
    .command('create')
    .description(
      'print a signed token that proves one identity (namespace + service account) to the identity service',
    )
    .requiredOption('--ns <namespace>', 'namespace of the workload')
    .requiredOption('--sa <service-account>', 'service account of the workload')
    .option('--ttl <duration>', 'how long the token is valid', '1h')
    .option(
      '--state-dir <dir>',
      'the identity service state directory holding the token key',
      DEFAULT_STATE_DIR,
    )
    .action(async (options: TokenOptions) => {
      // The join token's limits, reported as --ttl was written.
      const ttlMs = parseDurationWithin(options.ttl, '--ttl', { atLeast: '1s', atMost: '365d' });
      const keyDir = resolve(context.cwd, options.stateDir, 'identity');
      const isNewKey = !existsSync(join(keyDir, JOIN_TOKEN_KEY_FILE));
      const key = await loadOrCreateJoinTokenKey(keyDir);
      const issuer = createJoinTokenIssuer({ signingKey: key.privateKey, clock: context.clock });
      context.write(`${await issuer.mint({ namespace: options.ns, serviceAccount: options.sa, ttlMs })}\n`);
      // Run from another directory than the identity service's, this signed with a key of its own
      // that no service knows: the token was refused at certify time, far from the cause.
      if (isNewKey) {
        context.writeError(
          `note: ${options.stateDir} held no join-token key, so a new one was made (${join(keyDir, JOIN_TOKEN_KEY_FILE)}): only an identity service (or \`mutual up\`) started with --state-dir ${options.stateDir} accepts this token\n`,
        );
      }
    });
  token
    .command('revoke')
    .description(
      'make the identity service refuse join tokens from now on: one token (--token-file or --id, the tokenId of audit lines), or every token of an identity minted before now (--ns and --sa)',
    )
    .option('--token-file <file>', 'the token to revoke (- reads it from stdin)')
    .option(
      '--id <token-id>',
      'the tokenId of the token to revoke, as the audit log names it (16 hex digits)',
    )
    .option('--ns <namespace>', 'with --sa: revoke every token of this identity minted before now')
    .option('--sa <service-account>', 'with --ns: revoke every token of this identity minted before now')
    .option('--reason <text>', 'why, kept with the revocation and told to the workload that tries the token')
    .option(
      '--state-dir <dir>',
      'the identity service state directory holding the token key',
      DEFAULT_STATE_DIR,
    )
    .action(async (options: RevokeOptions) => revoke(options, context));
}

interface RevokeOptions {
  tokenFile?: string;
  id?: string;
  ns?: string;
  sa?: string;
  reason?: string;
  stateDir: string;
}

/**
 * Appends one revocation to the state directory; the identity service using it refuses the tokens
 * from its next certify request on. Certificates already issued stay valid until they expire.
 */
async function revoke(options: RevokeOptions, context: CliContext): Promise<void> {
  const chosen = [options.tokenFile, options.id, options.ns ?? options.sa].filter(
    (value) => value !== undefined,
  );
  if (chosen.length !== 1 || (options.ns === undefined) !== (options.sa === undefined)) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      'name what to revoke with exactly one of --token-file FILE, --id TOKEN_ID, or --ns NS --sa SA together',
    );
  }
  const stateDir = resolve(context.cwd, options.stateDir, 'identity');
  const revokedAt = new Date(context.clock.now()).toISOString();
  const reason = options.reason === undefined ? {} : { reason: options.reason };
  const afterwards =
    'the identity service refuses it from its next certify request on (no restart); certificates already issued with it stay valid until they expire';
  if (options.id !== undefined) {
    if (!isTokenId(options.id)) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `--id ${JSON.stringify(options.id)} is not a token ID: use the 16 hex digits of an audit line's "tokenId"`,
      );
    }
    const file = await appendTokenRevocation(stateDir, { tokenId: options.id, revokedAt, ...reason });
    context.write(`revoked token ${options.id} (recorded in ${file}); ${afterwards}\n`);
    return;
  }
  if (options.ns !== undefined && options.sa !== undefined) {
    assertServiceAccountFlags(options.ns, options.sa);
    // A token's iat is in whole seconds, so the cut is the next whole second, and the command
    // returns only once it has passed: a token minted earlier in this second is revoked too, and one
    // minted after the command returns is not.
    const nowMs = context.clock.now();
    const issuedBeforeMs = Math.ceil((nowMs + 1) / 1000) * 1000;
    const issuedBefore = new Date(issuedBeforeMs).toISOString();
    const file = await appendTokenRevocation(stateDir, {
      namespace: options.ns,
      serviceAccount: options.sa,
      issuedBefore,
      revokedAt,
      ...reason,
    });
    await new Promise((done) => setTimeout(done, issuedBeforeMs - nowMs));
    context.write(
      `revoked every join token for ${options.ns}/${options.sa} minted before ${issuedBefore} (recorded in ${file}); ${afterwards}. Tokens minted from now on are valid: give the workload one with \`mutual identity token create --ns ${options.ns} --sa ${options.sa}\`\n`,
    );
    return;
  }
  const tokenFile = options.tokenFile as string;
  const keyPath = resolve(stateDir, JOIN_TOKEN_KEY_FILE);
  let keyPem: string;
  try {
    keyPem = await readFile(keyPath, 'utf8');
  } catch (error) {
    throw new MutualError(
      'MUTUAL_IO_READ_FAILED',
      `cannot read the join-token key ${keyPath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): point --state-dir at the directory the identity service and \`token create\` use; nothing was revoked`,
      { cause: error },
    );
  }
  // A join token is under 1 KB; the bound keeps `--token-file /dev/zero` from eating memory.
  const tokenText = await readBoundedText(
    tokenFile === '-' ? process.stdin : resolve(context.cwd, tokenFile),
    {
      what: 'token file',
      label: tokenFile === '-' ? '<stdin>' : resolve(context.cwd, tokenFile),
      maxBytes: 1024 * 1024,
      advice: 'give the file `mutual identity token create` printed the token to',
    },
  );
  const token = await describeJoinToken(tokenText, createPublicKey(keyPem));
  const file = await appendTokenRevocation(stateDir, { tokenId: token.tokenId, revokedAt, ...reason });
  const expired = token.expiresAtMs <= context.clock.now();
  context.write(
    `revoked token ${token.tokenId} for ${token.namespace}/${token.serviceAccount}${expired ? ` (it had already expired at ${new Date(token.expiresAtMs).toISOString()})` : `, valid until ${new Date(token.expiresAtMs).toISOString()}`} (recorded in ${file}); ${afterwards}\n`,
  );
}

interface ServeOptions {
  ca?: string;
  issuerCert?: string;
  issuerKey?: string;
  trustAnchors?: string;
  trustDomain?: string;
  rateLimit: string;
  rateBurst: string;
  authFailureLimit: string;
  authFailureBurst: string;
  clientTimeout: string;
  maxConnectionsPerAddress: string;
  maxConnections: string;
  tokenReviewUrl?: string;
  tokenReviewCa?: string;
  tokenReviewTokenFile?: string;
  stateDir: string;
  listen: string;
  adminListen: string;
  lifetime: string;
  skew: string;
}

interface TokenOptions {
  ns: string;
  sa: string;
  ttl: string;
  stateDir: string;
}

async function serve(options: ServeOptions, context: CliContext): Promise<void> {
  const settings = serveSettings(options, context);
  const tokenReview = await tokenReviewConfig(options, context);
  const service = await startIdentityService({
    ...settings,
    ...(tokenReview ? { tokenReview } : {}),
    log: (line) => context.writeError(line),
    stateDir: resolve(context.cwd, options.stateDir, 'identity'),
    clock: context.clock,
  });
  // Signals are handled from before the line saying it listens (see dashboard-command.ts).
  const shutdown = context.untilShutdown();
  context.write(
    `identity service for ${service.trustDomain} listening on ${service.apiUrl} (admin ${service.adminUrl})\n`,
  );
  const signal = await shutdown;
  context.write(`${signal}: draining and stopping\n`);
  await service.close();
}

function caFiles(options: ServeOptions, context: CliContext): CaFilePaths {
  const fromDir = options.ca === undefined ? undefined : caFilePaths(resolve(context.cwd, options.ca));
  const pick = (flag: string, given: string | undefined, fallback: string | undefined) => {
    if (given !== undefined) return resolve(context.cwd, given);
    if (fallback !== undefined) return fallback;
    throw new MutualError('MUTUAL_CLI_USAGE', `give --ca <dir>, or ${flag} with the other CA file flags`);
  };
  return {
    issuerCertificate: pick('--issuer-cert', options.issuerCert, fromDir?.issuerCertificate),
    issuerKey: pick('--issuer-key', options.issuerKey, fromDir?.issuerKey),
    trustAnchors: pick('--trust-anchors', options.trustAnchors, fromDir?.trustAnchors),
  };
}

/**
 * The flags of `identity serve`, each checked once before anything starts: one bad value fails
 * with its own error (and code); several fail together, one line each, so one run names them all.
 */
function serveSettings(options: ServeOptions, context: CliContext) {
  const problems: MutualError[] = [];
  const attempt = <T>(parse: () => T): T => {
    try {
      return parse();
    } catch (error) {
      if (!isMutualError(error)) throw error;
      problems.push(error);
      return undefined as T;
    }
  };
  const settings = {
    ca: attempt(() => caFiles(options, context)),
    ...(options.trustDomain === undefined
      ? {}
      : { trustDomain: attempt(() => parseTrustDomain(options.trustDomain!)) }),
    listen: attempt(() => parseListenAddress(options.listen, '--listen')),
    adminListen: attempt(() => parseListenAddress(options.adminListen, '--admin-listen')),
    // The limits of issueSvid, checked here to report them as the flags were written.
    lifetimeMs: attempt(() =>
      parseDurationWithin(options.lifetime, '--lifetime', {
        atLeast: '1s',
        atMost: '90d',
        code: 'MUTUAL_PKI_LIFETIME_INVALID',
      }),
    ),
    skewMs: attempt(() =>
      parseDurationWithin(options.skew, '--skew', {
        atLeast: '0s',
        atMost: '1h',
        code: 'MUTUAL_PKI_LIFETIME_INVALID',
      }),
    ),
    // 0 turns Node's handshake and header deadlines off; beyond 24.8 days its timers overflow.
    clientTimeoutMs: attempt(() =>
      parseDurationWithin(options.clientTimeout, '--client-timeout', { atLeast: '1s', atMost: '10m' }),
    ),
    rateLimit: {
      perSecond: attempt(() => perSecondFlag('--rate-limit', options.rateLimit)),
      burst: attempt(() => countFlag('--rate-burst', options.rateBurst)),
    },
    authFailureLimit: {
      perSecond: attempt(() => perSecondFlag('--auth-failure-limit', options.authFailureLimit)),
      burst: attempt(() => countFlag('--auth-failure-burst', options.authFailureBurst)),
    },
    maxConnectionsPerAddress: attempt(() => maxConnectionsPerAddressFlag(options.maxConnectionsPerAddress)),
    ...attempt(() => maxConnectionsFlag(options.maxConnections)),
  };
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${problems.length} flags of identity serve are wrong:\n${problems.map((problem) => `  - ${problem.message}`).join('\n')}`,
    );
  }
  return settings;
}

/**
 * A rate in requests per second: a positive decimal number, at least one a day (a slower rate
 * would make Retry-After longer than a day, and a vanishing one would not fit in the header).
 */
function perSecondFlag(flag: string, text: string): number {
  const perSecond = Number(text);
  if (!/^\s*\d*\.?\d+\s*$/.test(text) || !(perSecond >= 1 / 86_400) || !Number.isFinite(perSecond)) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${flag} ${JSON.stringify(text)} must be a positive number of requests per second, e.g. 5 or 0.5 (at least 0.0000116, one a day)`,
    );
  }
  return perSecond;
}

/** `--max-connections-per-address` of a control-plane service (identity, destination), for `.option(...)`. */
export const MAX_CONNECTIONS_PER_ADDRESS_OPTION = [
  '--max-connections-per-address <count>',
  'open API connections one client address (IPv6: its /64) may have; past it new ones are closed at once',
  String(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
] as const;

/** `--max-connections` of a control-plane service, for `.option(...)`; `held` names what it holds silent. */
export function maxConnectionsOption(held: string) {
  return [
    '--max-connections <count|auto>',
    `open API connections in all; past it the oldest idle one (or ${held}) is closed for the new one. auto: 3/4 of the file descriptor limit (ulimit -n), at most ${MAX_DEFAULT_CONNECTIONS}`,
    'auto',
  ] as const;
}

/**
 * `--max-connections <count|auto>` of a control-plane service: `{}` for auto (the service's default,
 * 3/4 of the descriptor limit), else `{ maxConnections }`, spread into its config.
 */
export function maxConnectionsFlag(text: string): { maxConnections?: number } {
  if (text.trim() === 'auto') return {};
  return { maxConnections: countFlag('--max-connections', text, 'connections (or auto)') };
}

/** `--max-connections-per-address <count>` of a control-plane service. */
export function maxConnectionsPerAddressFlag(text: string): number {
  return countFlag('--max-connections-per-address', text, 'connections');
}

/** A count (a burst, a cap): a whole number of `what` (requests unless said), at least 1. */
function countFlag(flag: string, text: string, what = 'requests'): number {
  const count = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(count) || count < 1) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${flag} ${JSON.stringify(text)} must be a whole number of ${what}, at least 1`,
    );
  }
  return count;
}

async function tokenReviewConfig(
  options: ServeOptions,
  context: CliContext,
): Promise<TokenReviewConfig | undefined> {
  if (options.tokenReviewUrl === undefined) return undefined;
  const isInCluster = options.tokenReviewUrl === 'in-cluster';
  // The pod environment is the one input read here rather than in config/: it only exists in-cluster.
  const url = isInCluster ? inClusterApiServerUrl(process.env) : options.tokenReviewUrl;
  if (!/^https:\/\//.test(url)) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--token-review-url ${JSON.stringify(url)} must be an https:// URL or in-cluster`,
    );
  }
  const caPath = options.tokenReviewCa ?? (isInCluster ? IN_CLUSTER_FILES.ca : undefined);
  const tokenPath = options.tokenReviewTokenFile ?? (isInCluster ? IN_CLUSTER_FILES.token : undefined);
  const caPem =
    caPath === undefined ? undefined : await readTextFile(resolve(context.cwd, caPath), 'API server CA');
  return {
    url,
    ...(caPem ? { caPem } : {}),
    ...(tokenPath ? { bearerToken: () => readFile(resolve(context.cwd, tokenPath), 'utf8') } : {}),
  };
}
