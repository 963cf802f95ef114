// Every failure a user can meet carries a stable code from this table. Callers match on
// `code`, never on message text; docs/errors.md explains each code (a test keeps them in step).

export interface ErrorDescription {
  /** What went wrong, in a sentence a user can search for. */
  meaning: string;
  /** What to do about it. */
  action: string;
}

export const errorCatalog = {
  // --- SPIFFE IDs ---
  MUTUAL_SPIFFE_ID_INVALID: {
    meaning: 'A SPIFFE ID breaks a rule of the SPIFFE-ID specification; the message names the rule.',
    action:
      'Write it as spiffe://<trust-domain>/<path>: lower-case trust domain of [a-z0-9.-_], path segments of [a-zA-Z0-9.-_], no empty, "." or ".." segments, no trailing slash, query, fragment, port or user info.',
  },
  MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID: {
    meaning: 'A trust domain name breaks a rule of the SPIFFE-ID specification; the message names the rule.',
    action: 'Use a lower-case name of [a-z0-9.-_], at most 255 characters, such as cluster.local.',
  },
  MUTUAL_SPIFFE_NOT_MESH_ID: {
    meaning: 'A valid SPIFFE ID does not have the mesh form /ns/<namespace>/sa/<service-account>.',
    action: 'Use spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> for workloads in the mesh.',
  },

  // --- Input files and encodings ---
  MUTUAL_PKI_PEM_MALFORMED: {
    meaning: 'The input is not PEM, or a PEM block is truncated or not valid base64.',
    action: 'Check that the file holds complete "-----BEGIN ...-----" / "-----END ...-----" blocks.',
  },
  MUTUAL_PKI_PEM_WRONG_TYPE: {
    meaning: 'A PEM block of the wrong kind was given, e.g. a private key where a certificate belongs.',
    action:
      'Pass the file the option asks for; the message says which block type was expected and which was found.',
  },
  MUTUAL_PKI_CERT_MALFORMED: {
    meaning:
      'A certificate could not be decoded (bad DER inside the PEM block), or breaks an X.509 encoding rule: not v3, a duplicated extension, a zero, negative or over-long serial, mismatched signature algorithms, an empty issuer.',
    action:
      'Re-export the certificate; `openssl x509 -in FILE -noout -text` shows whether it is readable at all.',
  },
  MUTUAL_PKI_KEY_MALFORMED: {
    meaning: 'A private key could not be decoded.',
    action:
      'Provide an unencrypted PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") PEM file.',
  },
  MUTUAL_PKI_KEY_UNSUPPORTED: {
    meaning: 'The key type or size is not accepted (only ECDSA P-256/P-384 and RSA of at least 2048 bits).',
    action:
      'Generate an ECDSA P-256 key (the default), or RSA with 2048 bits or more for an imported anchor.',
  },
  MUTUAL_PKI_KEY_MISMATCH: {
    meaning: 'A private key does not belong to the certificate it was paired with.',
    action:
      'Pair each certificate with the key it was issued for (the key.pem written with it); `mutual cert verify --bundle BUNDLE --cert CERT --key KEY` says whether they belong together.',
  },
  MUTUAL_PKI_CSR_MALFORMED: {
    meaning: 'A certificate signing request could not be decoded.',
    action: 'Send a PEM or DER PKCS#10 CSR built by the workload.',
  },
  MUTUAL_PKI_CSR_SIGNATURE_INVALID: {
    meaning: "A CSR's self-signature does not verify, so it does not prove possession of its key.",
    action: 'Rebuild the CSR with the private key that matches its public key.',
  },
  MUTUAL_PKI_CSR_SAN_INVALID: {
    meaning: 'A CSR asks for names other than exactly one URI SAN with the expected SPIFFE ID.',
    action: 'Put exactly one URI SAN, the workload SPIFFE ID, in the CSR and no DNS, IP or e-mail SANs.',
  },
  MUTUAL_PKI_DNS_NAME_INVALID: {
    meaning: 'A DNS name requested for a certificate is not a valid host name.',
    action:
      'Use letters, digits and "-" in dot-separated labels (optionally starting with "*."), e.g. web.demo.svc.',
  },
  MUTUAL_PKI_LIFETIME_INVALID: {
    meaning: 'A requested certificate lifetime or skew is not positive, or is longer than allowed.',
    action: 'Give a duration such as 24h, 90m or 3650d within the limits shown in the message.',
  },
  MUTUAL_PKI_ISSUER_INVALID: {
    meaning:
      'The signing CA cannot issue: it is not a CA, lacks keyCertSign, is expired, or its key does not match.',
    action:
      'Run `mutual cert inspect` on the issuer. Expired: make a new one under the same anchor (`mutual ca issuer --ca DIR --out next`, DIR holding trust-anchor.crt and .key) and copy its issuer.crt and issuer.key over the old ones; if the anchor has expired too, `mutual ca create --out newca` and copy all its files.',
  },
  MUTUAL_PKI_ISSUER_UNVERIFIABLE: {
    meaning:
      "A certificate the issuer signs would be refused by peers trusting the anchors (Mutual's verifier or OpenSSL): a name constraint, path length, key usage, extended key usage, signature algorithm or missing key identifier in the CA chain; the identity service does not start (or keeps its previous issuer).",
    action:
      'Fix the CA certificate the message names as it says, then start again; `mutual cert verify --bundle ANCHORS --cert CHAIN` shows the same reason for a certificate it signed.',
  },
  MUTUAL_PKI_BUNDLE_INVALID: {
    meaning: 'A trust bundle is empty, holds a non-CA certificate, or is not valid PEM or SPIFFE JWKS.',
    action: 'A bundle holds one or more self-signed CA certificates (PEM) or a SPIFFE bundle JWKS document.',
  },

  // --- Peer verification reasons (what the proxy reports on a failed handshake) ---
  MUTUAL_PKI_CERT_EXPIRED: {
    meaning: 'A certificate in the chain is past its notAfter (beyond the allowed clock skew).',
    action: 'Renew the certificate; if it should be valid, check the clocks of both machines.',
  },
  MUTUAL_PKI_CERT_NOT_YET_VALID: {
    meaning: 'A certificate in the chain is before its notBefore (beyond the allowed clock skew).',
    action: 'Check the clocks of both machines (clock skew); the issuer may be ahead of the verifier.',
  },
  MUTUAL_PKI_CHAIN_UNTRUSTED: {
    meaning:
      'No chain could be built from the certificate to a trust anchor in the bundle (unknown authority).',
    action: 'Add the issuing root to the trust bundle, and send the intermediate together with the leaf.',
  },
  MUTUAL_PKI_ANCHOR_NOT_IN_BUNDLE: {
    meaning:
      "`mutual ca issuer --ca DIR`: DIR's trust-anchor.crt is not one of the roots in DIR's bundle.pem, which the identity service trusts and serves, so an issuer made under it would be refused; after an anchor rotation the directory still holds the old root.",
    action:
      "Copy the new root's trust-anchor.crt and trust-anchor.key (from the directory `mutual ca create` wrote them to) into DIR, or pass that directory as --ca. Do not add the old root back to bundle.pem.",
  },
  MUTUAL_PKI_SIGNATURE_INVALID: {
    meaning:
      'A signature in the chain does not verify against its issuer (tampered or mis-paired certificate).',
    action: 'Re-issue the certificate from the real issuer; never edit certificate bytes.',
  },
  MUTUAL_PKI_CHAIN_INVALID: {
    meaning:
      'The chain breaks a path rule: an intermediate is not a CA, a path length is exceeded, a critical extension is unknown, the chain is too deep, or a leaf breaks a profile rule (missing authority key identifier, disallowed key type, name constraints in a leaf).',
    action:
      'Issue workload certificates from an intermediate made by `mutual ca create`; the message names the rule.',
  },
  MUTUAL_PKI_CA_AS_LEAF: {
    meaning:
      'A CA certificate (basicConstraints CA:true or keyCertSign) was presented as a peer certificate.',
    action: 'Peers must present a leaf certificate issued for their identity, never a CA certificate.',
  },
  MUTUAL_PKI_KEY_USAGE_INVALID: {
    meaning:
      'keyUsage or extendedKeyUsage is missing or wrong for the use (digitalSignature; serverAuth+clientAuth).',
    action: 'Issue the certificate with `mutual cert issue`, which sets the usages an X.509-SVID needs.',
  },
  MUTUAL_PKI_NOT_SVID: {
    meaning:
      'The peer certificate is not an X.509-SVID: it has no URI SAN, several, or one that is not a valid SPIFFE ID, or it is larger than 32 KiB.',
    action: 'Issue the peer a certificate with exactly one URI SAN holding its SPIFFE ID.',
  },
  MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED: {
    meaning: "A name in the chain is outside a CA's name constraints (e.g. another trust domain).",
    action: 'Issue the certificate from the CA of its own trust domain.',
  },
  MUTUAL_PKI_TRUST_DOMAIN_REJECTED: {
    meaning: "The peer's SPIFFE ID belongs to a trust domain that is not accepted here.",
    action:
      'Federate with that trust domain on purpose, or issue the peer an identity in the local trust domain.',
  },
  MUTUAL_PKI_SPIFFE_ID_MISMATCH: {
    meaning: "The peer's SPIFFE ID is valid and trusted but is not the identity that was expected.",
    action: 'Check that the destination is the service you meant, or correct the expected SPIFFE ID.',
  },
  MUTUAL_PKI_PEER_NAME_MISMATCH: {
    meaning: 'The peer certificate does not carry the expected DNS name or IP address.',
    action: 'Issue the certificate with the name clients use (`mutual cert issue --dns NAME`).',
  },

  // --- Identity service ---
  MUTUAL_IDENTITY_TOKEN_INVALID: {
    meaning:
      'The token presented to the identity service is malformed, forged, expired, not yet valid, revoked, or for another audience; the message says which.',
    action:
      'Mint a fresh token (`mutual identity token create --ns NS --sa SA`) or check the token file the workload reads.',
  },
  MUTUAL_IDENTITY_REVOCATIONS_INVALID: {
    meaning:
      "The identity service's list of revoked join tokens (revoked-tokens.jsonl in its state directory, written by `mutual identity token revoke`) has a line that is not a revocation, or cannot be read. At start the service refuses to run; while it runs, every valid line still applies and a file it cannot read keeps the list it read last, so no revoked token becomes valid again.",
    action:
      'Fix or delete the line the message names (each line is a JSON object with a tokenId, or a namespace, serviceAccount and issuedBefore), or make the file readable by the service; add revocations with `mutual identity token revoke` rather than by hand.',
  },
  MUTUAL_IDENTITY_REQUEST_INVALID: {
    meaning:
      'A request to the identity service is not valid JSON, lacks a required field, or has a bad parameter (such as wait).',
    action:
      'POST /v1/certify takes a JSON object {"token": "...", "csr": "-----BEGIN CERTIFICATE REQUEST-----..."}; GET /v1/bundle takes ?format=jwks and, with If-None-Match, ?wait=30s (at most 60s).',
  },
  MUTUAL_IDENTITY_PLAIN_HTTP: {
    meaning:
      "Plain HTTP (http://) reached the identity service's API port, which speaks only HTTPS with TLS 1.3. The service answers 400 in plain text and closes the connection.",
    action:
      "Call the API with https:// (e.g. `curl --cacert ca/bundle.pem https://localhost:8443/v1/bundle`); a sidecar's --identity-url must be https:// too. Only the admin port (--admin-listen: /live, /ready, /metrics, /ca) speaks plain HTTP.",
  },
  MUTUAL_IDENTITY_REQUEST_TOO_LARGE: {
    meaning:
      'A request body is larger than the identity service accepts (64 KiB), or its headers are larger than 16 KiB (431).',
    action: 'Send one CSR and one token per request, with the usual headers; none needs more than a few KiB.',
  },
  MUTUAL_IDENTITY_RATE_LIMITED: {
    meaning: 'One identity asked for certificates faster than the per-identity rate limit allows.',
    action:
      'Wait for the time in the Retry-After header; a workload needs a new certificate only every few hours.',
  },
  MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED: {
    meaning:
      'Too many certify requests with tokens that failed authentication came from one client address (by default 20 at once, then 5 a second: --auth-failure-burst, --auth-failure-limit), so the identity service answers 429 to every request from that address, good token or not, without checking its token, until Retry-After has passed. It keeps a flood of bad tokens from becoming a flood of TokenReview calls to the Kubernetes API server.',
    action:
      'Find the workload on that address sending a bad token (its earlier MUTUAL_IDENTITY_TOKEN_INVALID refusals in the audit log say why) and fix its token file; other workloads on the address get in once the flood stops, after the Retry-After header.',
  },
  MUTUAL_IDENTITY_CONNECTIONS_LIMITED: {
    meaning:
      'One client address (an IPv6 one by its /64) already has as many connections open to the identity service API as it may (1024 by default, --max-connections-per-address), so a new one from it was closed before its TLS handshake. It keeps one client from holding every file descriptor of the service (a bundle long poll holds a connection for a minute on one request) while workloads on other addresses are served.',
    action:
      'Find what on that address opens so many connections (the audit log names it; `ss -tn dst <address>` on its host lists them). If it is many sidecars behind one address (a node of hostNetwork pods, a NAT), raise --max-connections-per-address.',
  },
  MUTUAL_IDENTITY_KEY_UPDATE_FLOOD: {
    meaning:
      'A client of the identity service API sent more TLS 1.3 KeyUpdates than its data could need (32, plus one per MiB it sent), so its connection was closed. OpenSSL answers each KeyUpdate that asks for one with a record of its own, which the service would keep in memory for as long as the client does not read, and each costs it CPU: without the limit, one client that needs no token (the bundle is public) grew the memory of the service without bound and kept it from answering /live.',
    action:
      'No TLS stack renews its keys that often on its own: find what runs on the address the audit log names. A client that needs its connection back simply connects again.',
  },
  MUTUAL_IDENTITY_CONNECTIONS_SHED: {
    meaning:
      'The identity service API had as many connections open as it keeps in all (--max-connections; by default 3/4 of its file descriptor limit, ulimit -n, at most 16384), so to accept a new one it closed the oldest doing nothing useful: one in its TLS handshake or that had not sent a request, then one idle between requests, then a bundle long poll held silent (its client polls again), then one still sending its body; never one being answered. It keeps clients on many addresses from taking every file descriptor, after which no workload could certify or fetch the bundle.',
    action:
      'Look at mutual_identity_connections_open{state} and the audit log for who holds the connections (`ss -tn sport = :<API port>` on the service host counts them by address). If they are real sidecars (their long polls come back at once), raise --max-connections, and the file descriptor limit with it; otherwise find the client opening connections it does not use.',
  },
  MUTUAL_IDENTITY_UNAVAILABLE: {
    meaning: 'The identity service cannot sign right now (no valid issuer loaded, or it is shutting down).',
    action:
      'Check the identity service log and `mutual check`; workloads keep their current certificates and retry.',
  },
  MUTUAL_IDENTITY_REQUEST_TIMEOUT: {
    meaning:
      'A client sent its request too slowly (headers or body not complete within the client timeout), so the identity service closed it.',
    action:
      'Send the whole request at once; if the network is really that slow, raise `--client-timeout` of `mutual identity serve`.',
  },
  MUTUAL_IDENTITY_TOKEN_REVIEW_UNAVAILABLE: {
    meaning:
      'The identity service could not ask the Kubernetes API server to review a ServiceAccount token (unreachable, TLS failure, its own credentials refused, or an unreadable answer); the token itself was not judged.',
    action:
      'Check `--token-review-url`, the CA and token files (in-cluster: /var/run/secrets/kubernetes.io/serviceaccount) and that the service account may create tokenreviews (system:auth-delegator); workloads retry.',
  },
  MUTUAL_IDENTITY_CA_RELOAD_REFUSED: {
    meaning:
      'A changed issuer or trust-anchor file was refused (not a CA, key does not match, expired, not under a current anchor, or an anchor set that no longer covers the issuer in use); the previous issuer and anchors keep serving.',
    action:
      'Fix the files named in the message; rotate anchors in order: add the new root to the bundle, switch the issuer to one under it, then drop the old root.',
  },

  // --- Transparent interception (proxy-init, original destination) ---
  MUTUAL_PROXY_ORIGINAL_DST_UNAVAILABLE: {
    meaning:
      "The native addon that reads a redirected connection's original destination (SO_ORIGINAL_DST) is not built or cannot be loaded, so transparent mode cannot work.",
    action:
      'Run `npm run build:native` in the Mutual package (needs g++, make and python3), or use explicit upstream listeners instead of transparent mode.',
  },
  MUTUAL_PROXY_ORIGINAL_DST_FAILED: {
    meaning:
      'The kernel would not tell the original destination of a connection (the message gives the errno): the socket is closed, not TCP, or has no conntrack entry.',
    action:
      'Check that the connection reached the proxy through the iptables REDIRECT rules of `mutual proxy init` and that the nf_conntrack module is loaded.',
  },
  MUTUAL_PROXY_INIT_PERMISSION_DENIED: {
    meaning: 'Installing or removing the iptables rules was refused: the process lacks CAP_NET_ADMIN.',
    action:
      'Run `mutual proxy init` as root or with CAP_NET_ADMIN (in Kubernetes, an init container with securityContext.capabilities.add: [NET_ADMIN]); `--dry-run` prints the rules without privileges.',
  },
  MUTUAL_PROXY_INIT_IPTABLES_MISSING: {
    meaning: 'The iptables tools (iptables-save, iptables-restore) are not installed or not on PATH.',
    action:
      'Install them (Debian: `apt-get install iptables`), or apply the rules printed by `--dry-run` yourself.',
  },
  MUTUAL_PROXY_INIT_FAILED: {
    meaning:
      'iptables-save or iptables-restore failed for a reason other than permissions; the message shows its output.',
    action:
      'Check that the kernel has the nat table (module iptable_nat or nf_tables) and try the rules from `--dry-run` by hand to see which one fails.',
  },
  MUTUAL_PROXY_INIT_IPV6_UNAVAILABLE: {
    meaning:
      '`mutual proxy init --ipv6 on` was asked for the IPv6 rules, but ip6tables cannot use the nat table in this network namespace (not installed, or no IPv6 NAT in the kernel). Nothing was changed.',
    action:
      'Install ip6tables (Debian: the iptables package) on a kernel with IPv6 NAT (ip6table_nat or nf_tables), or use `--ipv6 auto` (IPv4 rules only when IPv6 NAT is missing) or `--ipv6 off`.',
  },

  // --- Sidecar proxy ---
  MUTUAL_PROXY_CONFIG_INVALID: {
    meaning:
      'The flags or MUTUAL_PROXY_* variables given to `mutual proxy run` are invalid; the message lists each problem.',
    action: 'Fix each listed flag; `mutual proxy run --help` and docs/proxy.md describe them.',
  },
  MUTUAL_PROXY_LISTEN_FAILED: {
    meaning: 'The proxy could not listen on one of its addresses (in use, or not allowed).',
    action: 'Pick a free port, or stop the process that holds it (`ss -ltnp` shows which).',
  },
  MUTUAL_PROXY_CREDENTIALS_INVALID: {
    meaning: 'The certificate, key or trust bundle files of the proxy do not form a usable set.',
    action:
      'Give the leaf-first chain, its own private key and the roots it chains to; `mutual cert verify --bundle BUNDLE --cert CERT --key KEY` shows what is wrong.',
  },
  MUTUAL_PROXY_NOT_READY: {
    meaning: 'The proxy has no certificate yet, so it refuses mesh traffic (fail closed).',
    action:
      'Check that the identity service is reachable and the token is valid (`mutual check`, the proxy log).',
  },
  MUTUAL_PROXY_UPSTREAM_FAILED: {
    meaning: 'The proxy could not reach the destination, or the destination is not who it must be.',
    action:
      'Check that the destination and its proxy are running and carry the expected SPIFFE ID (`mutual identity SERVICE`).',
  },
  MUTUAL_PROXY_UNMESHED_REFUSED: {
    meaning: 'Outbound STRICT is set and the app tried to reach a destination that is not in the mesh.',
    action: 'Mesh the destination, add it to the destination table, or drop --outbound-strict for it.',
  },

  // --- Dashboard (mutual dashboard and its JSON API) ---
  MUTUAL_DASHBOARD_REMOTE_NOT_ALLOWED: {
    meaning:
      'The dashboard was asked to listen on an address other than loopback without --allow-remote; it shows the mesh to anyone who can reach it.',
    action:
      'Keep the default (127.0.0.1), or add --allow-remote when other machines must reach it (it has no login: put it behind something that has).',
  },
  MUTUAL_DASHBOARD_LISTEN_FAILED: {
    meaning:
      'The dashboard could not listen on the address given (in use, or not an address of this machine).',
    action: 'Pick another with --listen HOST:PORT; port 0 picks a free one and the URL is printed.',
  },
  MUTUAL_DASHBOARD_HOST_REFUSED: {
    meaning:
      'An API request named a Host other than this machine while the dashboard listens on loopback (how DNS-rebinding pages try to read it).',
    action:
      'Open the dashboard at the URL it printed (http://127.0.0.1:PORT/), or start it with --allow-remote.',
  },
  MUTUAL_DASHBOARD_READ_ONLY: {
    meaning: 'The dashboard API was sent a method other than GET or HEAD; it never changes the mesh.',
    action: 'Use GET; change the mesh with the CLI (`mutual up`, `mutual down`, policy files).',
  },
  MUTUAL_DASHBOARD_NOT_FOUND: {
    meaning: 'The dashboard has no page or API endpoint at that path.',
    action: 'Use one of the endpoints listed in docs/dashboard-api.md.',
  },
  MUTUAL_DASHBOARD_COLLECT_FAILED: {
    meaning: 'The dashboard could not read the mesh state (for example a damaged runtime.json).',
    action:
      'Read the message; `mutual check` and `mutual down` (same --state-dir) help clean a broken state directory.',
  },

  // --- Policy (PeerAuthentication, AuthorizationPolicy) ---
  MUTUAL_POLICY_YAML_INVALID: {
    meaning: 'A policy file is not valid YAML; the message gives the file, line and column.',
    action:
      'Fix the YAML at the position shown (indentation, an unclosed bracket or quote), then run `mutual policy check FILE`.',
  },
  MUTUAL_POLICY_INVALID: {
    meaning:
      'A PeerAuthentication or AuthorizationPolicy breaks its schema: an unknown field, a wrong type, a bad mode, principal, port or CIDR. The message lists every problem with file:line:column.',
    action:
      'Correct each field named in the message (unknown fields are refused, not ignored), then run `mutual policy check DIR` until it reports no errors.',
  },
  MUTUAL_POLICY_UNSUPPORTED: {
    meaning:
      'A policy uses an Istio feature Mutual does not implement: action CUSTOM, JWT request principals, path templates, or a condition key it cannot evaluate.',
    action:
      'Express the rule with ALLOW/DENY/AUDIT and the supported fields (principals, namespaces, ipBlocks, ports, methods, paths, hosts, source.*, request.headers[...], destination.port), or remove it.',
  },
  MUTUAL_POLICY_NOT_FOUND: {
    meaning:
      'A policy file or directory does not exist, cannot be watched, or (for `policy check`) holds no YAML files.',
    action: 'Pass a YAML file or a directory of them; the message names the path that was tried.',
  },

  // --- The mesh on one machine (mutual up / down / check) ---
  MUTUAL_MESH_CONFIG_INVALID: {
    meaning:
      'A mesh file (mesh.yaml) is not valid YAML or breaks a rule; the message names each file:line:column.',
    action:
      'Fix the fields named in the message; docs/mesh.md describes every field, $PORT and the <NAME>_URL variables apps get.',
  },
  MUTUAL_MESH_ALREADY_RUNNING: {
    meaning: 'A mesh is already running from this state directory.',
    action: 'Stop it with `mutual down` (same --state-dir), or use another --state-dir.',
  },
  MUTUAL_MESH_NOT_RUNNING: {
    meaning: 'No running mesh was found in the state directory (no runtime.json, or its processes are gone).',
    action: 'Start one with `mutual up -f mesh.yaml`, or pass the --state-dir it was started with.',
  },
  MUTUAL_MESH_RUNTIME_INVALID: {
    meaning:
      "The state directory's runtime.json, where `mutual up` records the processes it started, is not one (truncated, edited, or written by another version of mutual).",
    action:
      'Run `mutual down --state-dir DIR`: it removes the file and stops a `mutual up` still running from that directory (named by DIR/up.lock), which stops what it started. Processes left by a `mutual up` that was killed are no longer known: stop them by hand. Then `mutual up` starts afresh.',
  },
  MUTUAL_MESH_START_FAILED: {
    meaning:
      'A process of the mesh exited or did not become ready in time; the message names it and shows the end of its log.',
    action:
      'Read the log lines in the message (all of it: `mutual logs SERVICE [--proxy]`), fix the cause and run `mutual up` again.',
  },
  MUTUAL_MESH_SERVICE_UNKNOWN: {
    meaning: 'A command named a service the running mesh does not have.',
    action: 'Use one of the service names the message lists (they come from mesh.yaml).',
  },
  MUTUAL_MESH_ADMIN_UNREACHABLE: {
    meaning: "A proxy's or the identity service's admin endpoint did not answer.",
    action:
      'Read the log the message names; mutual check, given the same --state-dir as the command, shows what else in the mesh is down.',
  },
  // mutual up --isolation netns
  MUTUAL_MESH_NETNS_UNAVAILABLE: {
    meaning:
      '`mutual up --isolation netns` (or `mutual down` of such a mesh) cannot make network namespaces here: it needs Linux, root, `ip` (iproute2), iptables-save/iptables-restore and setpriv (util-linux).',
    action:
      'Run it as root on Linux with those installed (Debian: apt-get install iproute2 iptables util-linux), or use the default `--isolation loopback`, which needs none of them.',
  },
  MUTUAL_MESH_NETNS_FAILED: {
    meaning:
      'A command that creates or removes the network of a netns mesh (namespaces, veths, bridge, addresses, iptables rules) failed; the message names the command and its output.',
    action:
      'Fix the cause the output names, then `mutual down` (same --state-dir) removes whatever was left; `ip netns list` and `ip link` show leftovers by the mesh prefix (mu…).',
  },

  // --- Kubernetes: mutual install ---
  MUTUAL_K8S_INSTALL_FLAG_INVALID: {
    meaning:
      'A `mutual install` flag has a bad value, or flags that must go together (or must not) were mixed; the message lists each problem.',
    action:
      'Fix each flag the message names; `mutual install --help` lists them. Bring-your-own CA needs all three --identity-* files; --identity-external-issuer needs only --identity-trust-anchors-file.',
  },
  MUTUAL_K8S_INSTALL_ISSUER_UNANCHORED: {
    meaning:
      'The issuer given to `mutual install` does not chain to a current root in --identity-trust-anchors-file, so no proxy would trust what it signs.',
    action:
      'Put the root that signed the issuer (and is not expired) into the trust anchors file, or pass the issuer made under those anchors.',
  },

  // --- Kubernetes: sidecar injection (mutual inject, the admission webhook) ---
  MUTUAL_K8S_INJECT_YAML_INVALID: {
    meaning:
      'The manifests given to `mutual inject` are not valid YAML, or hold a pod kubectl would refuse (a field of the wrong type, no containers); the message gives file:line:column of each problem.',
    action:
      'Fix the YAML at the position shown (indentation, an unclosed quote or bracket, a misspelled or missing field), then run `mutual inject` again.',
  },
  MUTUAL_K8S_INJECT_API_VERSION_INVALID: {
    meaning:
      'A workload given to `mutual inject` has an apiVersion or kind that no Kubernetes able to run the injected proxy (a native sidecar: 1.29 or newer) serves: no apiVersion, a Deployment as `v1`, a removed beta such as `extensions/v1beta1` or `batch/v1beta1`, or the kind in the wrong case (`deployment`). kubectl apply would refuse it; nothing is printed. Custom resources of other API groups are not judged.',
    action:
      'Write the apiVersion and kind the message names at the file:line:column it gives (Deployment, StatefulSet, DaemonSet, ReplicaSet: apps/v1; Job, CronJob: batch/v1; Pod, ReplicationController: v1), then run `mutual inject` again.',
  },
  MUTUAL_K8S_INJECT_ANNOTATION_INVALID: {
    meaning:
      'A pod (or pod template) has a `mutual.dev/` or `config.mutual.dev/` annotation with a value the injector cannot use (a mode other than STRICT/PERMISSIVE/DISABLE, a bad port list, CIDR or resource quantity). Offline injection stops; the webhook refuses the pod rather than start it without the mesh.',
    action:
      'Correct the annotation named in the message (docs/kubernetes.md, "Injection reference", lists every annotation and its format), then apply again.',
  },
  MUTUAL_K8S_ADMISSION_REVIEW_INVALID: {
    meaning:
      'The injector webhook received a request that is not an `admission.k8s.io/v1` AdmissionReview with a request (not JSON, another kind or apiVersion, no uid); it answers HTTP 400.',
    action:
      'Only the Kubernetes API server should call POST /inject and POST /validate: check that the MutatingWebhookConfiguration (path /inject or /inject/namespace) and the ValidatingWebhookConfiguration (path /validate) list admissionReviewVersions ["v1"].',
  },
  MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE: {
    meaning:
      'The injector webhook received a request body over its 8 MiB limit, more than the API server sends for any pod (it takes request bodies up to 3 MiB); it answers HTTP 413.',
    action:
      'The API server does not send reviews this large: find the client sending it (only the API server should call the webhook).',
  },
  MUTUAL_K8S_WEBHOOK_CERT_INVALID: {
    meaning:
      'The injector webhook could not use its serving certificate and key (missing, not PEM, or the key does not match the certificate). At start it does not serve; on a reload it keeps the previous certificate.',
    action:
      'Check the files given with --cert and --key (the Secret mounted into the injector); `mutual cert inspect FILE` shows the certificate.',
  },
  MUTUAL_K8S_WEBHOOK_PLAIN_HTTP: {
    meaning:
      "Plain HTTP (http://) reached the injector webhook's port, which speaks only HTTPS (TLS 1.2 or newer). The webhook answers 400 in plain text and closes the connection; the API server always calls it over HTTPS, so this is someone (or something) else.",
    action:
      "The API server calls the webhook over HTTPS with the MutatingWebhookConfiguration's caBundle; nothing needs changing for it. To call it by hand use https://, e.g. `curl -k -H 'content-type: application/json' --data @review.json https://127.0.0.1:8443/inject` (-k, or --cacert with the caBundle and the service's name, since the certificate names mutual-injector.mutual-system.svc, not the address). Only the admin port (--admin-listen: /live, /ready, /metrics) speaks plain HTTP.",
  },
  MUTUAL_K8S_WEBHOOK_LISTEN_FAILED: {
    meaning:
      'The injector webhook could not listen on its HTTPS (--listen) or admin (--admin-listen) address: in use, or not allowed.',
    action:
      'Pick a free port with the flag the message names, or stop the process that holds it (`ss -ltnp` shows which).',
  },
  MUTUAL_K8S_TRUST_ANCHORS_INVALID: {
    meaning:
      'The trust anchors the injector writes into every proxy (--trust-anchors-file: the mutual-trust-anchors ConfigMap mounted into the injector, or a file given to `mutual inject`) are missing or not PEM roots (self-signed CA certificates). At start nothing is injected; on a reload the injector keeps the previous anchors.',
    action:
      "Give the mesh's anchors: `kubectl -n mutual-system get configmap mutual-trust-anchors -o jsonpath='{.data.ca-bundle\\.crt}' > anchors.pem`, or the bundle.pem of `mutual ca create`; `mutual cert inspect FILE` shows what a file holds.",
  },

  // --- Kubernetes API client (the control plane's list and watch) ---
  MUTUAL_K8S_API_FAILED: {
    meaning:
      'A request to the Kubernetes API server failed: unreachable, TLS failure, our credentials refused (401), not allowed by RBAC (403), or an answer that is not the expected JSON. Watches retry with backoff.',
    action:
      'Check the API server address and CA (in-cluster: the pod environment and /var/run/secrets/kubernetes.io/serviceaccount), and that the ServiceAccount may list and watch pods, services and endpointslices.',
  },
  MUTUAL_K8S_CONFIG_INVALID: {
    meaning:
      'The connection to the Kubernetes API server cannot be set up: --kubernetes in-cluster outside a pod, or a kubeconfig without a usable current context, server, or credentials Mutual can use (auth-provider plugins, removed in Kubernetes 1.26, are not run; exec plugins of client.authentication.k8s.io/v1 and v1beta1 are, without a terminal).',
    action:
      'Inside a pod use --kubernetes in-cluster; outside give --kubeconfig FILE whose context has an https server, its CA, and a token, a client certificate or an exec plugin (as EKS, GKE and AKS write).',
  },
  MUTUAL_K8S_EXEC_PLUGIN_FAILED: {
    meaning:
      "The kubeconfig's exec credential plugin (aws eks get-token, gke-gcloud-auth-plugin, kubelogin, ...) is not installed, failed, took over 60 s, or printed no ExecCredential with a token or a client certificate.",
    action:
      "Run the command the message names by hand (it is what kubectl runs): install it (the message gives the kubeconfig's installHint), log in with it (e.g. aws sso login, gcloud auth login), and retry.",
  },

  // --- Destination service (mutual destination serve, the proxy's --destination-url) ---
  MUTUAL_DESTINATION_REQUEST_INVALID: {
    meaning:
      'A request to the destination API names no destination, or one that is not IP:PORT, [IPv6]:PORT or <service>.<namespace>.svc.<cluster-domain>:PORT, or has a bad wait or version parameter.',
    action:
      'Ask for GET /v1/destinations/<ip>:<port> or /v1/destinations/<service>.<namespace>.svc.cluster.local:<port>, with ?wait=30s&version=<the version of the last answer> to wait for a change (docs/destination.md).',
  },
  MUTUAL_DESTINATION_PLAIN_HTTP: {
    meaning:
      "Plain HTTP (http://) reached the destination service's API port, which speaks only HTTPS with mutual TLS (TLS 1.3). The service answers 400 in plain text and closes the connection.",
    action:
      "Call the API with https:// and an SVID as client certificate (e.g. `curl -k --cert web/cert.pem --key web/key.pem https://127.0.0.1:8086/v1/destinations/10.0.0.11:8080`; -k because the service's certificate names a SPIFFE ID, not a host); a proxy's --destination-url must be https:// too. Only the admin port (--admin-listen: /live, /ready, /metrics) speaks plain HTTP.",
  },
  MUTUAL_DESTINATION_TABLE_INVALID: {
    meaning:
      'The destination table file (`mutual destination serve --file`) is not valid YAML/JSON or breaks the format: each entry needs an IP address and a workload SPIFFE ID; ports are 1-65535; protocols are opaque, http or detect.',
    action:
      'Fix the entries the message names (docs/destination.md shows the format); while the file is bad, the service keeps answering from the last good table.',
  },
  MUTUAL_DESTINATION_UNAVAILABLE: {
    meaning:
      'The proxy could not get an answer from the destination service within its bound (unreachable, refused our certificate, not the expected SPIFFE ID, or an error status); the destination was treated as unknown (plain text, or refused under --outbound-strict).',
    action:
      'Check `--destination-url` and that the service is ready (its admin /ready); the proxy log names the failure and `mutual_outbound_destination_lookups_total{result="unavailable"}` counts them.',
  },

  // --- Policies served to proxies (GET /v1/policies, the proxy's --policy-url) ---
  MUTUAL_DESTINATION_POLICIES_NOT_READY: {
    meaning:
      'The destination service has not finished its first list of the policy resources (or its policy directory), so it cannot say which policies apply yet; it answers 503 rather than an incomplete set.',
    action:
      'Wait: proxies ask again on their own. If it lasts, see the service log and its /ready: the ServiceAccount needs list and watch on peerauthentications and authorizationpolicies in security.mutual.dev (and security.istio.io), which `mutual install` grants.',
  },
  MUTUAL_DESTINATION_POLICY_SKIPPED: {
    meaning:
      'A PeerAuthentication or AuthorizationPolicy object in the cluster is not valid for Mutual (an unknown or misspelt field, a bad value) and is not served; the other policies still apply. An AuthorizationPolicy that Istio accepts but that uses what Mutual cannot enforce (requestPrincipals, remoteIpBlocks, CUSTOM, request.auth.* or connection.sni conditions, path templates) is served instead as a stricter stand-in: its ALLOW rules that use them are dropped, its DENY rules lose those fields and match more, CUSTOM becomes DENY. Counted in mutual_destination_policies_skipped (reason invalid, or unsupported).',
    action:
      'Fix the field the log line names (`kubectl get <kind> -n <ns> <name> -o yaml`; `mutual policy check FILE` checks the same rules offline); the next change to the object is picked up by the watch.',
  },
  MUTUAL_DESTINATION_POLICIES_UNAVAILABLE: {
    meaning:
      'The proxy could not get its policies from --policy-url (unreachable, refused our certificate, not the expected SPIFFE ID, an error status, or an answer it cannot parse). Before the first set it refuses inbound traffic and is not ready; afterwards the last good set stays in force.',
    action:
      'Check --policy-url and that the destination service is ready (its admin /ready); the proxy retries with backoff and logs when policies arrive again.',
  },

  // --- Control-plane daemons binding their ports (identity serve, destination serve) ---
  MUTUAL_IDENTITY_LISTEN_FAILED: {
    meaning:
      'The identity service could not listen on its API (--listen) or admin (--admin-listen) address: in use, or not allowed.',
    action:
      'Pick a free port with the flag the message names, or stop the process that holds it (`ss -ltnp` shows which).',
  },
  MUTUAL_DESTINATION_LISTEN_FAILED: {
    meaning:
      'The destination service could not listen on its API (--listen) or admin (--admin-listen) address: in use, or not allowed.',
    action:
      'Pick a free port with the flag the message names, or stop the process that holds it (`ss -ltnp` shows which).',
  },

  // --- Files and command line ---
  MUTUAL_IO_READ_FAILED: {
    meaning: 'A file could not be read (missing, a directory, or no permission).',
    action: 'Check the path and its permissions; the message names the file.',
  },
  MUTUAL_IO_NOT_A_FILE: {
    meaning:
      'A path given as an input file is a directory, a FIFO, a socket or a device, or is far larger than such a file can be (certificates, keys and bundles: 1 MiB).',
    action:
      'Give the path of the file itself (for a Kubernetes Secret volume, the file inside the mount, e.g. /etc/tls/tls.crt); the message names the flag and the path.',
  },
  MUTUAL_IO_WRITE_FAILED: {
    meaning: 'A file could not be written.',
    action:
      'Check that the directory exists (or can be created: no file in the way) and is writable; the message names the path and what to give instead.',
  },
  MUTUAL_IO_ALREADY_EXISTS: {
    meaning: 'The output would overwrite existing keys or certificates, which Mutual never does silently.',
    action:
      'Choose another output directory (the option the message names), or move the existing files somewhere safe first; Mutual never overwrites keys.',
  },
  MUTUAL_CLI_USAGE: {
    meaning: 'A command was called with a missing, unknown or malformed argument.',
    action: 'Run the command with --help to see its arguments.',
  },
  MUTUAL_INTERNAL: {
    meaning: 'An unexpected internal error. This is a bug in Mutual.',
    action: 'Run again with MUTUAL_DEBUG=1 to see the stack trace and report it.',
  },
} as const satisfies Record<string, ErrorDescription>;

export type ErrorCode = keyof typeof errorCatalog;

export class MutualError extends Error {
  readonly code: ErrorCode;
  /** Machine-readable detail, e.g. the SPIFFE rule that was broken. */
  readonly detail: Readonly<Record<string, string | number | boolean>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; detail?: Record<string, string | number | boolean> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MutualError';
    this.code = code;
    this.detail = Object.freeze({ ...(options.detail ?? {}) });
  }
}

export function isMutualError(value: unknown, code?: ErrorCode): value is MutualError {
  return value instanceof MutualError && (code === undefined || value.code === code);
}

/** The error itself when it is a MutualError; anything else wrapped as MUTUAL_INTERNAL, keeping its cause. */
export function toMutualError(error: unknown): MutualError {
  return isMutualError(error)
    ? error
    : new MutualError('MUTUAL_INTERNAL', String((error as Error)?.message ?? error), { cause: error });
}
