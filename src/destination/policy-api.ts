// GET /v1/policies?namespace=NS [&wait=30s&version=V]: the policies for workloads in NS (its own
// and the root namespace's), versioned, with the destinations' long poll: a request carrying the
// current version (?version= or If-None-Match with its ETag) and a wait is held until the set for NS changes (200) or the wait ends (304).
// 503 until the source has a complete first view: an empty set then would mean "allow everything".
import type { Http2ServerResponse } from 'node:http2';
import { MutualError } from '../errors.ts';
import { knownVersions } from '../known-versions.ts';
import { requestInvalid } from './answer.ts';
import { parseWait, sendJson } from './http-api.ts';
import type { DestinationMetrics } from './metrics.ts';
import { type PolicySource, policyAnswer } from './policy-source.ts';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function createPolicyApi(source: PolicySource | undefined, metrics: DestinationMetrics) {
  // `hold`: marks the request held (its connection may then be closed at the connection limit);
  // returns the function to call when its answer is being made.
  return async (
    url: URL,
    ifNoneMatch: string | undefined,
    response: Http2ServerResponse,
    hold: () => () => void = () => () => {},
  ): Promise<void> => {
    if (!source) {
      return sendJson(response, 404, {
        error: {
          code: 'MUTUAL_DESTINATION_REQUEST_INVALID',
          message:
            'this destination service serves no policies: start it with --kubernetes or --kubeconfig (the cluster policies) or --policy-dir DIR',
        },
      });
    }
    const namespace = url.searchParams.get('namespace') ?? '';
    if (!NAMESPACE.test(namespace) || namespace.length > 63) {
      throw requestInvalid(
        `namespace=${JSON.stringify(namespace)} is not a namespace name: ask GET /v1/policies?namespace=<ns>`,
      );
    }
    const waitMs = parseWait(url.searchParams.get('wait'));
    const notReady = source.notReadyReason();
    if (notReady) {
      throw new MutualError(
        'MUTUAL_DESTINATION_POLICIES_NOT_READY',
        `the policies are not known yet (${notReady}); ask again shortly`,
      );
    }
    let answer = policyAnswer(source, namespace);
    const known = knownVersions(url.searchParams.get('version'), ifNoneMatch, answer.version);
    if (known.has(answer.version) && waitMs > 0) {
      metrics.watchesOpen.inc();
      const release = hold();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        const unsubscribe = source.subscribe(() => {
          if (!known.has(policyAnswer(source, namespace).version)) done();
        });
        response.once('close', done);
        function done() {
          clearTimeout(timer);
          unsubscribe();
          response.off('close', done);
          release();
          resolve();
        }
      });
      metrics.watchesOpen.dec();
      if (response.destroyed || response.writableEnded) return;
      answer = policyAnswer(source, namespace);
    }
    metrics.policyAnswers.inc({ result: known.has(answer.version) ? 'unchanged' : 'sent' });
    if (known.has(answer.version)) {
      response.writeHead(304, { etag: `"${answer.version}"` });
      response.end();
      return;
    }
    sendJson(response, 200, answer, { etag: `"${answer.version}"`, 'cache-control': 'no-cache' });
  };
}
