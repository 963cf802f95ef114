import type { Command } from 'commander';

/**
 * The Examples section of each command's --help, as `step`, `linkerd` and `istioctl` print one:
 * a new user copies a line before reading the options. Keyed by the command's path without
 * `mutual`. The offline ones are run, literally and in this order, from an empty directory by
 * test/e2e/cli-newuser-help-examples, so they stay true.
 */
export const COMMAND_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  'ca create': [
    '# a trust anchor and an issuer for cluster.local, in ./ca',
    'mutual ca create --trust-domain cluster.local --out ca',
  ],
  'ca issuer': [
    '# rotate the issuer: a new one under the same anchor, then hand it to the identity service',
    'mutual ca issuer --ca ca --out ca-next',
  ],
  'cert issue': [
    '# key, chain and trust bundle for one workload, in ./web',
    'mutual cert issue --ca ca --spiffe-id spiffe://cluster.local/ns/default/sa/web --out web',
    '# an hour-long certificate that also names web.local',
    'mutual cert issue --ca ca --spiffe-id spiffe://cluster.local/ns/default/sa/web --dns web.local --lifetime 1h --out web-1h',
  ],
  'cert inspect': [
    'mutual cert inspect web/cert.pem',
    'mutual cert inspect web/cert.pem -o json',
    '# from a pipe (- reads stdin)',
    "kubectl get secret web-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d | mutual cert inspect -",
  ],
  'cert verify': [
    'mutual cert verify --bundle web/bundle.pem --cert web/cert.pem --spiffe-id spiffe://cluster.local/ns/default/sa/web',
    "# is key.pem the certificate's own, and is it still valid 12 hours from now?",
    'mutual cert verify --bundle web/bundle.pem --cert web/cert.pem --key web/key.pem --at +12h',
  ],
  'spiffe parse': ['mutual spiffe parse spiffe://cluster.local/ns/default/sa/web'],
  'identity serve': [
    'mutual identity serve --ca ca --listen 127.0.0.1:8443',
    '# with Kubernetes ServiceAccount tokens too, from inside the cluster',
    'mutual identity serve --ca ca --listen 0.0.0.0:8443 --token-review-url in-cluster',
  ],
  'identity token create': [
    '# a join token for the workload default/web, valid 1 hour',
    'mutual identity token create --ns default --sa web > web.token',
  ],
  'identity token revoke': [
    'mutual identity token revoke --token-file web.token --reason "leaked in a CI log"',
    '# every token of default/web minted until now',
    'mutual identity token revoke --ns default --sa web',
  ],
  'identity show': ['mutual identity show web', 'mutual identity web -o json'],
  'destination serve': [
    'mutual destination serve --file destinations.yaml --cert destination/cert.pem --key destination/key.pem --bundle destination/bundle.pem',
  ],
  'proxy run': [
    '# web on 127.0.0.1:8080 behind an mTLS port 14001; its calls to 127.0.0.1:9001 go to api over mTLS',
    'mutual proxy run --cert web/cert.pem --key web/key.pem --bundle web/bundle.pem --inbound 127.0.0.1:14001=8080 --upstream 127.0.0.1:9001=spiffe://cluster.local/ns/default/sa/api@127.0.0.1:14002',
  ],
  'proxy init': ['# print the rules, change nothing', 'mutual proxy init --dry-run'],
  up: [
    'mutual up -f examples/demo/mesh.yaml',
    '# a second mesh beside the first',
    'mutual up -f examples/demo/mesh.yaml --state-dir /tmp/mesh-b',
  ],
  down: ['mutual down', 'mutual down --state-dir /tmp/mesh-b'],
  logs: ['mutual logs web', "# web's sidecar, followed", 'mutual logs web --proxy -f'],
  dashboard: ['mutual dashboard', 'mutual dashboard --listen 127.0.0.1:0'],
  edges: ['mutual edges', 'mutual edges -w', 'mutual edges -o json'],
  check: [
    'mutual check',
    '# for CI: JSON, and exit 1 on warnings too',
    'mutual check -o json --fail-on warning',
    '# sidecars started by hand with `mutual proxy run`',
    'mutual check --proxy 127.0.0.1:4191',
  ],
  'policy check': [
    'mutual policy check examples/demo/policies',
    '# also report selectors that match none of these workloads',
    'mutual policy check examples/demo/policies --workload emojivoto/web --workload emojivoto/voting',
  ],
  'policy explain': [
    '# may web call voting, and why?',
    'mutual policy explain --policy-dir examples/demo/policies --to emojivoto/voting --port 8080 --from cluster.local/ns/emojivoto/sa/web --method POST --path /vote',
    '# and a client without mTLS?',
    'mutual policy explain --policy-dir examples/demo/policies --to emojivoto/voting --port 8080 --plaintext',
  ],
  inject: [
    'mutual inject deploy.yaml --trust-anchors-file ca/bundle.pem > deploy-injected.yaml',
    'kubectl get deploy web -o yaml | mutual inject - --trust-anchors-file anchors.pem | kubectl apply -f -',
  ],
  version: ['mutual version', 'mutual version -o json'],
  install: [
    '# a new CA, kept in ./mutual-ca for later installs',
    'mutual install --identity-ca-out mutual-ca > mutual.yaml',
    'mutual install --identity-trust-anchors-file mutual-ca/bundle.pem --identity-issuer-certificate-file mutual-ca/issuer.crt --identity-issuer-key-file mutual-ca/issuer.key | kubectl apply -f -',
  ],
};

/** Adds each command's examples after its help; marks options that must be given "(required)". */
export function addHelpExamples(command: Command, path = ''): void {
  const examples = COMMAND_EXAMPLES[path];
  if (examples) {
    command.addHelpText('after', `\nExamples:\n${examples.map((line) => `  ${line}`).join('\n')}\n`);
  }
  // Commander marks neither: `ca create --help` gave no hint that --trust-domain and --out must be given.
  for (const option of command.options) {
    if (option.mandatory && option.description && !option.description.endsWith('(required)')) {
      option.description += ' (required)';
    }
  }
  for (const sub of command.commands)
    addHelpExamples(sub, path === '' ? sub.name() : `${path} ${sub.name()}`);
}
