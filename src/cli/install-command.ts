import type { Command } from 'commander';
import {
  DEFAULT_IMAGE,
  DEFAULT_TRUST_DOMAIN,
  IMAGE_PULL_POLICIES,
  INSTALL_DEFAULTS,
  type InstallFlags,
  installYaml,
  parseInstallFlags,
  renderInstall,
  WEBHOOK_FAILURE_POLICIES,
} from '../k8s/index.ts';
import type { CliContext } from './context.ts';

export function registerInstallCommand(program: Command, context: CliContext): void {
  program
    .command('install')
    .description(
      'print the Kubernetes manifests of the control plane, for `mutual install | kubectl apply -f -` (offline: talks to no cluster)',
    )
    .option('--image <reference>', 'image of every component and of the injected proxy', DEFAULT_IMAGE)
    .option(
      '--image-pull-policy <policy>',
      `imagePullPolicy of the control plane (${IMAGE_PULL_POLICIES.join(', ')})`,
      INSTALL_DEFAULTS.imagePullPolicy,
    )
    .option(
      '--trust-domain <name>',
      `SPIFFE trust domain (default: ${DEFAULT_TRUST_DOMAIN}, or that of --identity-issuer-certificate-file, or with --identity-external-issuer of the anchors)`,
    )
    .option('--identity-trust-anchors-file <file>', 'bring your own CA: the root(s) to trust, PEM')
    .option(
      '--identity-issuer-certificate-file <file>',
      'bring your own CA: the issuer certificate (PEM, chain after it), under one of the anchors',
    )
    .option('--identity-issuer-key-file <file>', 'bring your own CA: the issuer private key, PEM')
    .option(
      '--identity-external-issuer',
      'cert-manager (or another tool) writes the issuer Secret; render only the anchors (needs --identity-trust-anchors-file)',
    )
    .option(
      '--identity-anchor-lifetime <duration>',
      `generated CA: trust anchor lifetime (default: ${INSTALL_DEFAULTS.identityAnchorLifetime})`,
    )
    .option(
      '--identity-issuer-lifetime <duration>',
      `generated CA: issuer lifetime (default: ${INSTALL_DEFAULTS.identityIssuerLifetime})`,
    )
    .option(
      '--identity-ca-out <dir>',
      'generated CA: also write it (anchor key included) to this new directory, to bring it back on later installs',
    )
    .option(
      '--identity-svid-lifetime <duration>',
      'lifetime of workload certificates',
      INSTALL_DEFAULTS.identitySvidLifetime,
    )
    .option(
      '--webhook-failure-policy <policy>',
      `when the injector is unreachable: Ignore starts pods without a proxy, Fail refuses them (${WEBHOOK_FAILURE_POLICIES.join(', ')})`,
      INSTALL_DEFAULTS.webhookFailurePolicy,
    )
    .option(
      '--webhook-certificate-lifetime <duration>',
      "lifetime of the injector webhook's serving certificate",
      INSTALL_DEFAULTS.webhookCertificateLifetime,
    )
    .option(
      '--control-plane-replicas <count>',
      'replicas of each control-plane Deployment',
      INSTALL_DEFAULTS.controlPlaneReplicas,
    )
    .option(
      '--proxy-cpu-request <quantity>',
      "CPU request of every injected proxy (default: the injector's, 100m)",
    )
    .option(
      '--proxy-memory-request <quantity>',
      "memory request of every injected proxy (default: the injector's, 128Mi)",
    )
    .option('--proxy-cpu-limit <quantity>', "CPU limit of every injected proxy (default: the injector's, 2)")
    .option(
      '--proxy-memory-limit <quantity>',
      "memory limit of every injected proxy (default: the injector's, 1Gi)",
    )
    .option(
      '--proxy-default-mode <mode>',
      "peer authentication of injected proxies (STRICT, PERMISSIVE, DISABLE) unless a pod says otherwise (default: the proxy's, PERMISSIVE)",
    )
    .option(
      '--validate-istio-policies',
      "also refuse invalid security.istio.io policies at kubectl apply, as Mutual's policies are (only where no istiod runs: its own validator does that, and Mutual refuses some that Istio serves)",
    )
    .action(async (flags: InstallFlags) => {
      const config = parseInstallFlags(flags);
      const rendered = await renderInstall(config, { clock: context.clock, cwd: context.cwd });
      context.write(installYaml(rendered, config));
      if (rendered.identityCa.writtenTo !== undefined) {
        context.writeError(
          `wrote the generated identity CA to ${rendered.identityCa.writtenTo}; keep trust-anchor.key offline\n`,
        );
      } else if (config.identityCa.kind === 'generated') {
        // Said on stderr, not in the YAML: the one who pipes it into kubectl is the one to warn.
        context.writeError(
          '! this renders a NEW trust anchor, whose key is not kept: fine for a first install, but applied where Mutual already runs it replaces the anchor, and pods stop trusting each other until restarted. To install again or upgrade, give the CA you keep (--identity-trust-anchors-file, --identity-issuer-certificate-file, --identity-issuer-key-file) or keep this one with --identity-ca-out DIR (docs/kubernetes.md, "Where the identity CA comes from")\n',
        );
      }
    });
}
