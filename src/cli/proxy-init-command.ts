import type { Command } from 'commander';
import { MutualError } from '../errors.ts';
import {
  DEFAULT_ADMIN_PORT,
  DEFAULT_INBOUND_PORT,
  DEFAULT_OUTBOUND_PORT,
  DEFAULT_PROXY_UID,
  type InterceptRules,
  installInterceptRules,
  interceptRules,
  type PortRange,
  parsePortList,
  parseSubnetList,
  planInstall,
  planUninstall,
  uninstallInterceptRules,
} from '../proxy/intercept/index.ts';
import type { CliContext } from './context.ts';

interface InitOptions {
  inboundPort: string;
  outboundPort: string;
  adminPort: string;
  proxyUid: string;
  skipInboundPorts: string;
  skipOutboundPorts: string;
  skipOutboundSubnets: string;
  dryRun?: boolean;
  uninstall?: boolean;
}

/** `mutual proxy init`: install (or remove) the iptables NAT rules of transparent interception. */
export function registerProxyInitCommand(proxy: Command, context: CliContext): void {
  proxy
    .command('init')
    .description(
      'install the iptables NAT rules that send all TCP of this network namespace through the proxy (needs NET_ADMIN); idempotent',
    )
    .option('--inbound-port <port>', 'where inbound TCP is redirected', String(DEFAULT_INBOUND_PORT))
    .option('--outbound-port <port>', 'where outbound TCP is redirected', String(DEFAULT_OUTBOUND_PORT))
    .option('--admin-port <port>', 'the proxy admin port, never redirected', String(DEFAULT_ADMIN_PORT))
    .option(
      '--proxy-uid <uid>',
      "the proxy's uid: its own traffic is never redirected",
      String(DEFAULT_PROXY_UID),
    )
    .option('--skip-inbound-ports <list>', 'inbound ports not redirected, e.g. 22,8000-8100', '')
    .option('--skip-outbound-ports <list>', 'outbound destination ports not redirected, e.g. 25,3306', '')
    .option(
      '--skip-outbound-subnets <cidrs>',
      'outbound IPv4 destinations not redirected, e.g. 10.96.0.0/12',
      '',
    )
    .option('--dry-run', 'print the iptables-restore input and change nothing')
    .option('--uninstall', 'remove every MUTUAL_ chain and the jumps into them')
    .action(async (options: InitOptions) => init(options, context));
}

async function init(options: InitOptions, context: CliContext): Promise<void> {
  if (options.uninstall) {
    if (options.dryRun) {
      const plan = await planUninstall();
      context.write(
        plan.input === undefined
          ? '# no MUTUAL_ chains are installed: uninstall would change nothing\n'
          : `# input for \`iptables-restore --noflush\` (dry run: nothing was changed)\n${plan.input}`,
      );
      return;
    }
    const { removedChains } = await uninstallInterceptRules();
    context.write(
      removedChains.length === 0
        ? 'no MUTUAL_ chains were installed: nothing to remove\n'
        : `removed iptables chains ${removedChains.join(', ')} and the jumps into them\n`,
    );
    return;
  }
  const rules = interceptRules({
    inboundPort: integer(options.inboundPort, '--inbound-port'),
    outboundPort: integer(options.outboundPort, '--outbound-port'),
    adminPort: integer(options.adminPort, '--admin-port'),
    proxyUid: integer(options.proxyUid, '--proxy-uid'),
    skipInboundPorts: parsePortList(options.skipInboundPorts, '--skip-inbound-ports'),
    skipOutboundPorts: parsePortList(options.skipOutboundPorts, '--skip-outbound-ports'),
    skipOutboundSubnets: parseSubnetList(options.skipOutboundSubnets, '--skip-outbound-subnets'),
  });
  if (options.dryRun) {
    const plan = await planInstall(rules);
    context.write(
      `# input for \`iptables-restore --noflush\` (dry run: nothing was changed)\n${
        plan.isCurrentKnown
          ? ''
          : '# the current rules could not be read (no NET_ADMIN): shown as for a fresh install\n'
      }${plan.input}`,
    );
    return;
  }
  await installInterceptRules(rules);
  context.write(describe(rules));
}

function describe(rules: InterceptRules): string {
  const ports = (ranges: readonly PortRange[]) =>
    ranges.map((r) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`));
  const inboundExcept = ports([{ from: rules.adminPort, to: rules.adminPort }, ...rules.skipInboundPorts]);
  const outboundExcept = [
    `uid ${rules.proxyUid}`,
    'loopback',
    ...ports(rules.skipOutboundPorts).map((p) => `port ${p}`),
    ...rules.skipOutboundSubnets,
  ];
  return (
    `installed iptables rules (nat table, IPv4):\n` +
    `  inbound TCP  → :${rules.inboundPort} except ports ${inboundExcept.join(', ')}\n` +
    `  outbound TCP → :${rules.outboundPort} except ${outboundExcept.join(', ')}\n`
  );
}

function integer(text: string, flag: string): number {
  if (!/^\d{1,10}$/.test(text.trim())) {
    throw new MutualError('MUTUAL_CLI_USAGE', `${flag} ${JSON.stringify(text)} is not a number`);
  }
  return Number(text.trim());
}
