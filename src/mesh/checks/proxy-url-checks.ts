// `mutual check --proxy ADDR`: sidecars started by hand (`mutual proxy run`, static files or the
// identity service), checked through their admin port alone: no state directory, no runtime.json.
// The mesh's proxy checks need both; a user of the README's two-proxy example had no check at all.
import { formatDuration } from '../../config/index.ts';
import { parsePrometheusText } from '../prometheus-text.ts';
import type { HttpAnswer } from '../readiness.ts';
import type { ProxyIdentity } from '../scrape.ts';
import { verifyChainPem } from '../verify-identity.ts';
import { clockSkew, skewResult } from './mesh-checks.ts';
import { HANDSHAKE_FAILURES_METRIC } from './traffic-window.ts';
import { type CheckCategory, type CheckContext, type CheckResult, fail, ok, skip } from './types.ts';

/** `127.0.0.1:14191`, `:14191`, `localhost:14191` or `http://…` → the admin port's origin. */
export function proxyAdminUrl(address: string): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address)
    ? address
    : `http://${address.startsWith(':') ? `127.0.0.1${address}` : address}`;
  try {
    const url = new URL(withScheme);
    // Port 0 is no address to check (fetch went to port 80 and blamed it); :80 is one, which URL
    // leaves out of url.port as the default.
    const hasPort = url.port !== '' || /:80\/?$/.test(withScheme);
    if (
      url.protocol !== 'http:' ||
      !hasPort ||
      url.port === '0' ||
      (url.pathname !== '/' && url.pathname !== '')
    )
      return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

const SILENT = 'the sidecar does not answer (see "sidecar is ready")';

/** A sidecar's /ready answers 200 or 503; anything else is another server, or nothing. */
const isSidecarReadyAnswer = (answer: HttpAnswer | Error) =>
  !(answer instanceof Error) && (answer.status === 200 || answer.status === 503);

type IdentityRead =
  | { ok: true; identity: ProxyIdentity; date: string | undefined }
  | { ok: false; result: CheckResult };

/** GET /identity of one sidecar; when it gives nothing usable, the result to return instead. */
async function readIdentity(context: CheckContext, url: string): Promise<IdentityRead> {
  if (!isSidecarReadyAnswer(await context.adminGet(`${url}/ready`)))
    return { ok: false, result: skip(SILENT, url) };
  const answer = await context.adminGet(`${url}/identity`);
  if (answer instanceof Error) return { ok: false, result: fail(`${url}/identity: ${answer.message}`, url) };
  try {
    const identity = JSON.parse(answer.body) as ProxyIdentity;
    if (typeof identity !== 'object' || identity === null || !('spiffeId' in identity))
      throw new Error('no spiffeId');
    const date = typeof answer.headers.date === 'string' ? answer.headers.date : undefined;
    return { ok: true, identity, date };
  } catch {
    return {
      ok: false,
      result: fail(
        `${url}/identity answered ${answer.status} with no sidecar identity: is this a mutual proxy's admin port?`,
        url,
      ),
    };
  }
}

/** The checks of sidecars given by their admin addresses. */
export function proxyUrlChecks(urls: readonly string[]): CheckCategory {
  const each =
    (check: (context: CheckContext, url: string) => Promise<CheckResult>) => (context: CheckContext) =>
      Promise.all(urls.map((url) => check(context, url)));
  return {
    name: 'sidecars (--proxy)',
    checks: [
      {
        description: 'sidecar is ready',
        hint: 'a sidecar that is not ready refuses mTLS to and from its app',
        fix: 'read its log (what `mutual proxy run` printed): the message is what /ready answered',
        severity: 'error',
        run: each(async (context, url) => {
          const answer = await context.adminGet(`${url}/ready`);
          if (answer instanceof Error) return fail(`no answer at ${url}: ${answer.message}`, url);
          if (answer.status === 200) return ok('', url);
          if (answer.status === 503)
            return fail(`${url}/ready answered 503: ${answer.body.trim() || '(no body)'}`, url);
          return fail(
            `${url}/ready answered ${answer.status}, as no sidecar does: is this the address its --admin-listen was given?`,
            url,
          );
        }),
      },
      {
        description: 'certificate is valid and chained to its own trust bundle',
        hint: 'peers verify this certificate against the same roots: one that fails here fails there',
        fix: 'check the files it was given (`mutual cert verify --bundle BUNDLE --cert CERT --key KEY`) and replace them, certificate and key together: it reloads them by itself',
        severity: 'error',
        run: each(async (context, url) => {
          const read = await readIdentity(context, url);
          if (!read.ok) return read.result;
          const { identity } = read;
          if (!identity.certificateChainPem || !identity.spiffeId)
            return fail('it has no certificate yet', url);
          const verdict = verifyChainPem(
            identity.certificateChainPem,
            identity.spiffeId,
            identity.trustBundlePem ?? '',
            context.clock.now(),
          );
          // Named with its identity: a sidecar given another workload's files is valid on its own.
          // And how many roots it trusts: one added from another CA widens who it lets in.
          const roots = identity.trustBundlePem?.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
          return verdict.ok
            ? ok('', `${url} is ${identity.spiffeId}${roots > 1 ? `, trusting ${roots} roots` : ''}`)
            : fail(`${identity.spiffeId}: ${verdict.code}: ${verdict.message}`, url);
        }),
      },
      {
        description: 'its last certificate reload or renewal succeeded',
        hint: 'a refused reload keeps the previous certificate in use until it expires, so the sidecar still looks ready',
        fix: 'fix what the message names: a credential file (`mutual cert verify --bundle BUNDLE --cert CERT --key KEY` says what is wrong with it; write a certificate and its key together), or the identity service it renews from',
        severity: 'error',
        run: each(async (context, url) => {
          const read = await readIdentity(context, url);
          if (!read.ok) return read.result;
          const { lastRenewal, notAfter } = read.identity;
          const error = lastRenewal?.error;
          if (!error?.message) return ok('', url);
          const notAfterMs = notAfter ? Date.parse(notAfter) : Number.NaN;
          const nowMs = context.clock.now();
          const kept = Number.isNaN(notAfterMs)
            ? 'it has no certificate to fall back on'
            : notAfterMs > nowMs
              ? `it keeps serving the previous certificate, which expires in ${formatDuration(notAfterMs - nowMs)} (${notAfter})`
              : `the certificate it kept expired ${formatDuration(nowMs - notAfterMs)} ago`;
          return fail(
            `${lastRenewal?.at ? `at ${lastRenewal.at} ` : ''}${error.code ? `${error.code}: ` : ''}${error.message}`,
            url,
            [kept],
          );
        }),
      },
      {
        description: 'no mTLS connection refused since the sidecar started',
        hint: 'a peer with the wrong identity, an expired or untrusted certificate, or no sidecar at all is refused: its callers get 502s or resets',
        fix: 'the sidecar\'s log says, per refusal, the identity expected and the one presented ("outbound mTLS failed" as the client, "inbound client refused" or "inbound TLS handshake failed" as the server): give the server the certificate its clients expect, or correct the client\'s --upstream; counters never reset, so a refusal fixed since still shows until the sidecar restarts',
        severity: 'warning',
        run: each(async (context, url) => {
          if (!isSidecarReadyAnswer(await context.adminGet(`${url}/ready`))) return skip(SILENT, url);
          const answer = await context.adminGet(`${url}/metrics`);
          if (answer instanceof Error || answer.status !== 200)
            return fail(
              `${url}/metrics: ${answer instanceof Error ? answer.message : `answered ${answer.status}`}`,
              url,
            );
          const refusals = new Map<string, number>();
          for (const sample of parsePrometheusText(answer.body)) {
            if (sample.value <= 0) continue;
            const key =
              sample.name === 'mutual_outbound_refused_total'
                ? `outbound to ${sample.labels.destination || '(unknown)'}: ${sample.labels.reason || 'unknown'}`
                : sample.name === HANDSHAKE_FAILURES_METRIC && sample.labels.direction === 'inbound'
                  ? `inbound: ${sample.labels.reason || 'unknown'}`
                  : undefined;
            if (key) refusals.set(key, (refusals.get(key) ?? 0) + sample.value);
          }
          if (refusals.size === 0) return ok('', url);
          const total = [...refusals.values()].reduce((sum, count) => sum + count, 0);
          return fail(
            `${total} refused`,
            url,
            [...refusals].map(([what, count]) => `${what} (${count})`),
          );
        }),
      },
      {
        description: "sidecar's clock agrees with this machine's",
        hint: 'a skewed sidecar sees valid peer certificates as expired or not yet valid',
        fix: 'synchronise the clocks (NTP: `timedatectl set-ntp true`)',
        severity: 'error',
        run: each(async (context, url) => {
          const sentMs = context.clock.now();
          const read = await readIdentity(context, url);
          if (!read.ok) return read.result;
          return skewResult(
            clockSkew(read.date, sentMs, context.clock.now()),
            'the sidecar',
            read.date,
            context,
            url,
          );
        }),
      },
    ],
  };
}
