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
  /**
   * The workload's own trust domain (default `cluster.local`). As in Istio, a policy principal
   * `cluster.local/ns/<ns>/sa/<sa>` names this trust domain.
   */
  readonly trustDomain?: string;
  /** For `mutual check` on a mesh: its name and the ports it declares (policies name these). */
  readonly name?: string;
  readonly ports?: readonly number[];
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
  /** The target as forwarded: a path normalised by parseRequestTarget, then the query as sent. */
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
      /** Index (0-based) of the rule in that policy's `spec.rules` that matched. */
      readonly rule?: number;
      /** `ns/name` of every AUDIT policy that matched. */
      readonly audited?: readonly string[];
    }
  | {
      readonly allowed: false;
      /** `ns/name` of the deciding DENY policy, or of the workload's ALLOW policies when none matched. */
      readonly policy: string;
      readonly reason: 'denied-by-policy' | 'no-allow-match';
      /** Index (0-based) of the DENY rule that matched; absent for no-allow-match. */
      readonly rule?: number;
      readonly audited?: readonly string[];
    };

/** Policy for one workload at one moment; replaced (not mutated) when files change. */
export interface WorkloadPolicy {
  peerAuthenticationMode(port: number): PeerAuthenticationMode;
  /** TCP-level decision: HTTP-only fields follow Istio (ALLOW rules using them never match, DENY rules ignore them). */
  authorizeConnection(attributes: ConnectionAttributes): AuthorizationDecision;
  authorizeRequest(attributes: RequestAttributes): AuthorizationDecision;
}

/** How a port's mode was reached, for `mutual policy explain` and the dashboard. */
export interface PeerAuthenticationExplanation {
  readonly mode: PeerAuthenticationMode;
  /** `default` = no policy set a mode (Istio's PERMISSIVE). */
  readonly level: 'default' | 'mesh' | 'namespace' | 'workload' | 'port';
  /** `ns/name` of the PeerAuthentication that set the mode. */
  readonly policy?: string;
}

/** What `forWorkload` returns: the contract plus explanations (additions only). */
export interface ExplainableWorkloadPolicy extends WorkloadPolicy {
  readonly workload: WorkloadRef;
  explainPeerAuthentication(port: number): PeerAuthenticationExplanation;
  /** `ns/name` of every AuthorizationPolicy that applies to the workload, by action. */
  readonly authorizationPolicies: Readonly<Record<'ALLOW' | 'DENY' | 'AUDIT', readonly string[]>>;
}
