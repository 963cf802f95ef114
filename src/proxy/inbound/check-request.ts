// What an inbound request must be before it is authorized, and what is forwarded in its place:
// the target normalised by policy's parseRequestTarget (so the path a policy matched is the path
// the app receives) and one unambiguous host. Anything else is a 400, as Envoy answers it.
import type { IncomingMessage } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http2';
import { authorityProblem, hostProblem, methodProblem, parseRequestTarget } from '../../policy/index.ts';

export type CheckedRequest =
  | {
      readonly isValid: true;
      /** Normalised path and the query as sent: what policy matches and the app receives. */
      readonly target: string;
      /** The normalised path alone (probe paths are compared with it). */
      readonly path: string;
      readonly host: string;
    }
  | { readonly isValid: false; readonly problem: string };

export function checkHttp1Request(request: IncomingMessage): CheckedRequest {
  const target = parseRequestTarget(request.url ?? '/');
  if (!target.isValid) return target;
  let hosts = 0;
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    if (request.rawHeaders[i]!.length === 4 && request.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  }
  // node:http keeps the first and drops the rest; an app behind may read the last.
  if (hosts > 1) return invalid(`the request has ${hosts} Host headers; send one`);
  const host = request.headers.host;
  if (host === undefined && request.httpVersion !== '1.0') {
    return invalid('the request has no Host header; HTTP/1.1 requires one');
  }
  const mismatch = authorityProblem(target.authority, host);
  if (mismatch !== undefined) return invalid(mismatch);
  return checkedHost(target.path, target.query, host ?? '');
}

/**
 * An HTTP/2 request's headers as policy matches them: each name (lower case) with every value it
 * was sent with, in order. node:http2's header object keeps only the first of a repeated
 * User-Agent, Authorization, Referer... and joins others with ", "; Envoy, for which Istio's
 * `request.headers[...]` conditions are written, sees every value joined with ",", but Cookie
 * crumbs joined with "; ". (HTTP/1: node:http's `headersDistinct` is the same.)
 */
export function headersForPolicy(rawHeaders: readonly string[]): Record<string, string[]> {
  const headers: Record<string, string[]> = Object.create(null);
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const values = headers[name];
    if (values === undefined) headers[name] = [rawHeaders[i + 1]!];
    else values.push(rawHeaders[i + 1]!);
  }
  // HTTP/2 splits Cookie into crumbs, which Envoy (like node:http2) joins back with "; ".
  if (headers.cookie !== undefined) headers.cookie = [headers.cookie.join('; ')];
  return headers;
}

export function checkHttp2Request(headers: IncomingHttpHeaders): CheckedRequest {
  // HTTP/1 methods are upper case on the wire (node:http refuses others); HTTP/2 passes any token.
  const badMethod = methodProblem(headers[':method'] ?? 'GET');
  if (badMethod !== undefined) return invalid(badMethod);
  const target = parseRequestTarget(headers[':path'] ?? '/');
  if (!target.isValid) return target;
  const authority = headers[':authority'];
  const host: unknown = headers.host;
  if (host !== undefined && typeof host !== 'string')
    return invalid('the request has more than one Host header; send one');
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    return invalid(
      `:authority "${authority}" and the Host header "${host}" name different hosts; send one (RFC 9113 §8.3.1)`,
    );
  }
  return checkedHost(target.path, target.query, authority ?? host ?? '');
}

function checkedHost(path: string, query: string, host: string): CheckedRequest {
  const badHost = hostProblem(host);
  if (badHost !== undefined) return invalid(badHost);
  return { isValid: true, target: `${path}${query}`, path, host };
}

function invalid(problem: string): CheckedRequest {
  return { isValid: false, problem };
}
