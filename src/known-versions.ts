// Which answer a client already holds, for a 304 and the long poll: the sidecars send
// `?version=V`; anyone else (curl, a cache, a browser) sends back the ETag it was given, in the
// standard If-None-Match header. Both count: a request matching either is "not modified".

/**
 * The versions the request holds. If-None-Match is a list of entity tags (`"a", W/"b"`), compared
 * weakly as RFC 9110 §13.1.2 asks for GET; `*` means "whatever you have now", so it stands for the
 * version current when the request came in (`current`), and a long poll on it waits for a change.
 */
export function knownVersions(
  versionParameter: string | null,
  ifNoneMatch: string | string[] | undefined,
  current: string,
): ReadonlySet<string> {
  const known = new Set<string>();
  if (versionParameter !== null) known.add(versionParameter);
  const header = Array.isArray(ifNoneMatch) ? ifNoneMatch.join(',') : (ifNoneMatch ?? '');
  for (const item of header.split(',')) {
    const tag = item.trim();
    if (tag === '') continue;
    if (tag === '*') known.add(current);
    // Unquoted tags are not RFC 9110's, but some clients send them so; the versions hold no quotes.
    else known.add(tag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1'));
  }
  return known;
}
