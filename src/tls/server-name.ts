// The TLS server name (SNI) an outbound connection names its destination by. SNI is a DNS host
// name (RFC 6066 §3: letters, digits and hyphens; JSSE refuses anything else with
// illegal_parameter), so a SPIFFE ID cannot be sent as it is. As Linkerd names a workload
// `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`, an ID of the
// Kubernetes shape `spiffe://<td>/ns/<ns>/sa/<sa>` is sent as
// `<sa>.<ns>.serviceaccount.identity.<td>`: readable in a packet capture, and a server may route by it.
// Nothing trusts it: the server's identity is checked against its certificate's URI SAN.

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const MAX_NAME_LENGTH = 253;

/** The DNS name for a SPIFFE ID of the ns/sa shape, or undefined when it has none that is a valid host name. */
export function serverNameForSpiffeId(spiffeId: string): string | undefined {
  const match = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(spiffeId);
  if (!match) return undefined;
  const [, trustDomain, namespace, serviceAccount] = match as unknown as [string, string, string, string];
  const name = `${serviceAccount}.${namespace}.serviceaccount.identity.${trustDomain}`;
  if (name.length > MAX_NAME_LENGTH || !name.split('.').every((label) => LABEL.test(label))) return undefined;
  return name.toLowerCase();
}

/** Whether a server name has the shape serverNameForSpiffeId gives: `<sa>.<ns>.serviceaccount.identity.<td>`. */
export function isIdentityServerName(serverName: string): boolean {
  const at = serverName.toLowerCase().indexOf('.serviceaccount.identity.');
  // At least one label before (sa.ns) and a trust domain after.
  return (
    at > 0 && serverName.indexOf('.') < at && at + '.serviceaccount.identity.'.length < serverName.length
  );
}
