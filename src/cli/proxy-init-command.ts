import type { Command } from 'commander';
import { MutualError } from '../errors.ts';
import {
  DEFAULT_ADMIN_PORT,
  DEFAULT_INBOUND_PORT,
  DEFAULT_OUTBOUND_PORT,
  DEFAULT_PROXY_UID,
  type InterceptPlan,
  type InterceptRules,
  IPV6_MODES,
  type IpFamily,
  type Ipv6Mode,
  installDualStack,
  interceptRules,
  LOOPBACK_CIDR,
  type PortRange,
  parsePortList,
  parseSubnetList,
  planDualStackInstall,
  planDualStackUninstall,
  subnetFamily,
  uninstallDualStack,
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
  ipv6: string;
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
      'outbound destinations not redirected, IPv4 or IPv6 CIDRs, e.g. 10.96.0.0/12,fd00:10:96::/112',
      '',
    )
    .option(
      '--ipv6 <mode>',
      'IPv6 rules (ip6tables): auto = when ip6tables can use the nat table here, on = required, off = never',
      'auto',
    )
    .option('--dry-run', 'print the iptables-restore and ip6tables-restore input and change nothing')
    .option('--uninstall', 'remove every MUTUAL_ chain and the jumps into them, IPv4 and IPv6')
    .action(async (options: InitOptions) => init(options, context));
}

const TOOL: Record<IpFamily, string> = { 4: 'iptables', 6: 'ip6tables' };

async function init(options: InitOptions, context: CliContext): Promise<void> {
  const ipv6 = ipv6Mode(options.ipv6);
  if (options.uninstall) {
    if (options.dryRun) {
      const plans = await planDualStackUninstall(ipv6);
      for (const family of [4, 6] as const) {
        const plan = plans[family === 4 ? 'ipv4' : 'ipv6'];
        context.write(
          plan.skipped !== undefined
            ? `# IPv6: left alone (${plan.skipped})\n`
            : plan.input === undefined
              ? `# IPv${family}: no MUTUAL_ chains are installed: uninstall would change nothing\n`
              : `${planHeading(family)}${plan.input}`,
        );
      }
      return;
    }
    const removed = await uninstallDualStack(ipv6);
    for (const [family, result] of [
      [4, removed.ipv4],
      [6, removed.ipv6],
    ] as const) {
      if ('skipped' in result) {
        context.write(`IPv6: left alone (${result.skipped})\n`);
      } else {
        context.write(
          result.removedChains.length === 0
            ? `no MUTUAL_ chains were installed in the ${TOOL[family]} nat table: nothing to remove\n`
            : `removed ${TOOL[family]} chains ${result.removedChains.join(', ')} and the jumps into them\n`,
        );
      }
    }
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
    const plans = await planDualStackInstall(rules, ipv6);
    context.write(describePlan(4, plans.ipv4) + describePlan(6, plans.ipv6));
    return;
  }
  const installed = await installDualStack(rules, ipv6);
  context.write(describe(rules, 4));
  if ('input' in installed.ipv6) {
    context.write(describe(rules, 6));
  } else {
    const removed = installed.ipv6.removedChains;
    context.write(
      `IPv6: no rules installed (${installed.ipv6.skipped})${
        removed.length > 0 ? `; removed earlier ip6tables chains ${removed.join(', ')}` : ''
      }: IPv6 TCP is not intercepted\n`,
    );
  }
}

function ipv6Mode(text: string): Ipv6Mode {
  const mode = IPV6_MODES.find((candidate) => candidate === text.trim());
  if (!mode) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--ipv6 ${JSON.stringify(text)} is not a mode: give ${IPV6_MODES.join(', ')}`,
    );
  }
  return mode;
}

function planHeading(family: IpFamily): string {
  return `# IPv${family}: input for \`${TOOL[family]}-restore --noflush\` (dry run: nothing was changed)\n`;
}

function describePlan(family: IpFamily, plan: InterceptPlan): string {
  if (plan.skipped !== undefined) {
    return `# IPv6: no rules would be installed (${plan.skipped})${
      plan.input === undefined ? '\n' : '; the earlier IPv6 rules would be removed with:\n'
    }${plan.input ?? ''}`;
  }
  return `${planHeading(family)}${
    plan.isCurrentKnown
      ? ''
      : '# the current rules could not be read (no NET_ADMIN): shown as for a fresh install\n'
  }${plan.input}`;
}

function describe(rules: InterceptRules, family: IpFamily): string {
  const ports = (ranges: readonly PortRange[]) =>
    ranges.map((r) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`));
  const inboundExcept = ports([{ from: rules.adminPort, to: rules.adminPort }, ...rules.skipInboundPorts]);
  const outboundExcept = [
    `uid ${rules.proxyUid}`,
    `loopback (${LOOPBACK_CIDR[family]})`,
    ...ports(rules.skipOutboundPorts).map((p) => `port ${p}`),
    ...rules.skipOutboundSubnets.filter((subnet) => subnetFamily(subnet) === family),
  ];
  return (
    `installed ${TOOL[family]} rules (nat table, IPv${family}):\n` +
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
