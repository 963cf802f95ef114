// The contract between policy and the proxy. The proxy asks; policy answers with data that names
// the policy that decided. Pure values only: no sockets, no I/O.

/** Istio's peer-authentication modes after resolution (UNSET never reaches the proxy). */
export type PeerAuthenticationMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** The workload a proxy serves, as policies select it. */
export interface WorkloadRef {
  readonly namespace: string;
  /** Service account; used only for display. */
  readonly serviceAccount?: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** What is known about an inbound connection when it is authorized. */
export interface ConnectionAttributes {
  /** Verified SPIFFE ID of the client, or undefined over plaintext. */
  readonly sourcePrincipal?: string;
  readonly sourceIp: string;
  readonly destinationPort: number;
}

/** What is known about one HTTP request, on top of its connection. */
export interface RequestAttributes extends ConnectionAttributes {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type AuthorizationDecision =
  | {
      readonly allowed: true;
      /** `ns/name` of the ALLOW policy that matched, if any. */
      readonly policy?: string;
      /** `ns/name` of every AUDIT policy that matched. */
      readonly audited?: readonly string[];
    }
  | {
      readonly allowed: false;
      /** `ns/name` of the deciding DENY policy, or of the workload's ALLOW policies when none matched. */
      readonly policy: string;
      readonly reason: 'denied-by-policy' | 'no-allow-match';
      readonly audited?: readonly string[];
    };

/** Policy for one workload at one moment; replaced (not mutated) when files change. */
export interface WorkloadPolicy {
  peerAuthenticationMode(port: number): PeerAuthenticationMode;
  /** TCP-level decision: HTTP-only fields follow Istio (ALLOW rules using them never match, DENY rules ignore them). */
  authorizeConnection(attributes: ConnectionAttributes): AuthorizationDecision;
  authorizeRequest(attributes: RequestAttributes): AuthorizationDecision;
}
