// The request path that `paths`/`notPaths` match and that the app then receives, normalised as
// Istio's MERGE_SLASHES (BASE plus merged slashes): one percent-decoding of unreserved characters,
// `\` → `/`, `//` → `/`, `.`/`..` resolved, no fragment. `%2F`/`%5C` stay encoded (see
// otherPathReading). Pure: the proxy forwards what this returns, so policy and app see one path.
// The method and host checks are here too, so `mutual policy explain` refuses what the sidecar does.

/** A request target split and normalised, or why it cannot be forwarded. */
export type RequestTarget =
  | {
      readonly isValid: true;
      /** The normalised path, always starting with `/`. */
      readonly path: string;
      /** The query as sent, with its `?` (`''` when there is none). */
      readonly query: string;
      /** The authority of an absolute-form target (`GET http://host/x`), lower-cased. */
      readonly authority: string | undefined;
    }
  | { readonly isValid: false; readonly problem: string };

/** Splits and normalises a request target (HTTP/1 request line or HTTP/2 `:path`). */
export function parseRequestTarget(target: string): RequestTarget {
  let rest = target;
  let authority: string | undefined;
  const absolute = /^https?:\/\/([^/?#]*)/i.exec(target);
  if (absolute !== null) {
    authority = absolute[1]!.toLowerCase();
    if (authority === '' || authority.includes('@')) {
      return invalid(`the request target ${quote(target)} names no host or carries user info`);
    }
    rest = target.slice(absolute[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  } else if (target === '*') {
    return invalid(
      'the asterisk-form request target (OPTIONS *) asks about the proxy, not the app; ask for a path',
    );
  } else if (!target.startsWith('/')) {
    return invalid(`the request target ${quote(target)} is not a path: it must start with "/"`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\x00-\x20\x7f]/.test(rest)) {
    return invalid(`the request target ${quote(target)} contains a control character or a space`);
  }
  const fragment = rest.indexOf('#');
  if (fragment >= 0) rest = rest.slice(0, fragment);
  const queryStart = rest.indexOf('?');
  const rawPath = queryStart < 0 ? rest : rest.slice(0, queryStart);
  if (/%00/.test(rawPath)) return invalid(`the path ${quote(rawPath)} contains %00 (a NUL byte)`);
  return {
    isValid: true,
    path: normalizePath(rawPath),
    query: queryStart < 0 ? '' : rest.slice(queryStart),
    authority,
  };
}

/** RFC 3986 unreserved characters: decoding them never changes what a path means. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Decodes unreserved `%XX` once, turns `\` into `/`, merges slashes and resolves dot segments. */
export function normalizePath(path: string): string {
  const decoded = path.includes('%')
    ? path.replace(/%([0-9A-Fa-f]{2})/g, (encoded, hex: string) => {
        const char = String.fromCharCode(Number.parseInt(hex, 16));
        return UNRESERVED.test(char) ? char : encoded;
      })
    : path;
  const segments = decoded.replaceAll('\\', '/').split('/');
  const out: string[] = [];
  let hasTrailingSlash = false;
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    const isLast = i === segments.length - 1;
    if (segment === '' || segment === '.') hasTrailingSlash ||= isLast;
    else if (segment === '..') {
      out.pop();
      hasTrailingSlash ||= isLast;
    } else {
      out.push(segment);
      hasTrailingSlash = false;
    }
  }
  return out.length === 0 ? '/' : `/${out.join('/')}${hasTrailingSlash ? '/' : ''}`;
}

const AMBIGUOUS = /%2f|%5c|;/i;

/**
 * The path as an app that decodes `%2F`/`%5C` before routing, or drops `;parameters` from each
 * segment (Tomcat, Spring, Jetty), reads it; undefined when no app could read it differently.
 * A request must be allowed under both readings (stricter than Istio, which matches only the first).
 */
export function otherPathReading(path: string): string | undefined {
  if (!AMBIGUOUS.test(path)) return undefined;
  const segments = path.replace(/%2f|%5c/gi, '/').split('/');
  for (let i = 0; i < segments.length; i++) {
    const parameters = segments[i]!.indexOf(';');
    if (parameters >= 0) segments[i] = segments[i]!.slice(0, parameters);
  }
  const reading = normalizePath(segments.join('/'));
  return reading === path ? undefined : reading;
}

/** RFC 9110 §5.6.2 token: what a method may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Why the sidecar answers a request with this method 400 before authorizing it, or undefined.
 * Methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET`, and `methods: ["GET"]` does not
 * match it, so it is refused rather than read as GET (node:http refuses it in HTTP/1 too).
 */
export function methodProblem(method: string): string | undefined {
  if (!TOKEN.test(method)) return `the method ${quote(method)} is not an HTTP token`;
  if (method !== method.toUpperCase()) {
    return `the method "${method}" is not in upper case; methods are case-sensitive (RFC 9110 §9.1)`;
  }
  return undefined;
}

/** uri-host [":" port] (RFC 3986), without the `,` that would make it a list. */
const VALID_HOST = /^(?:\[[0-9A-Za-z:.%]+\]|[A-Za-z0-9.\-_~!$&'()*+;=%]*)(?::\d*)?$/;

/** Why the sidecar answers a request for this Host (or `:authority`) 400, or undefined. */
export function hostProblem(host: string): string | undefined {
  if (VALID_HOST.test(host)) return undefined;
  return `the host ${quote(host)} is not a host name or address with an optional :port`;
}

/**
 * Why an absolute-form target (`GET http://admin.internal/x`) and the Host header it came with
 * cannot be authorized as one request, or undefined: the two must name the same host.
 */
export function authorityProblem(
  authority: string | undefined,
  host: string | undefined,
): string | undefined {
  if (authority === undefined || host?.toLowerCase() === authority) return undefined;
  return `the request target names host "${authority}" but the Host header says ${JSON.stringify(host ?? '')}; send a path (GET /x) with the Host header`;
}

function invalid(problem: string): RequestTarget {
  return { isValid: false, problem };
}

function quote(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}
