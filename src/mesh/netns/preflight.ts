import { MutualError } from '../../errors.ts';
import { hasCommand } from './commands.ts';

/** What each tool is for, so a missing one is named with its package. */
const TOOLS: Readonly<Record<string, string>> = {
  ip: 'the `ip` command (iproute2)',
  'iptables-save': 'iptables-save (iptables)',
  'iptables-restore': 'iptables-restore (iptables)',
  setpriv: 'setpriv (util-linux)',
};

/**
 * Why network namespaces cannot be made here, or undefined when they can. Needs Linux, root
 * and the given tools (by default every one `mutual up --isolation netns` uses).
 */
export function netnsUnavailableReason(tools: readonly string[] = Object.keys(TOOLS)): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return `network namespaces need root (this runs as uid ${process.getuid?.()})`;
  const missing = tools.filter((tool) => !hasCommand(tool));
  if (missing.length > 0) {
    return `${missing.map((tool) => TOOLS[tool] ?? tool).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed`;
  }
  return undefined;
}

/** Throws MUTUAL_MESH_NETNS_UNAVAILABLE saying what is missing and what to do instead. */
export function requireNetns(what: string): void {
  const reason = netnsUnavailableReason();
  if (reason === undefined) return;
  throw new MutualError(
    'MUTUAL_MESH_NETNS_UNAVAILABLE',
    `${what} cannot run here: ${reason}. Run it as root with iproute2, iptables and util-linux installed (e.g. \`sudo npx mutual …\`), or use \`--isolation loopback\` (the default), which needs none of them`,
    { detail: { reason } },
  );
}
