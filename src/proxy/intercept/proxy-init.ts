import { spawn } from 'node:child_process';
import { MutualError } from '../../errors.ts';
import {
  type InterceptRules,
  type IpFamily,
  installedChains,
  installRestoreInput,
  uninstallRestoreInput,
} from './iptables-rules.ts';

// Applies the interception rules with iptables-save / iptables-restore (IPv4) and ip6tables-save /
// ip6tables-restore (IPv6): one atomic transaction per family per install or uninstall. Needs
// CAP_NET_ADMIN; without it, fails with a coded error.

/** The two iptables tools of one family, behind an interface so another backend (a netns) fits in. */
export interface Iptables {
  /** `iptables-save -t nat` */
  saveNat(): Promise<string>;
  /** `iptables-restore --noflush` with `input` on stdin. */
  restore(input: string): Promise<void>;
}

export function createIptables(commands = { save: 'iptables-save', restore: 'iptables-restore' }): Iptables {
  return {
    saveNat: () => run(commands.save, ['-t', 'nat'], ''),
    restore: async (input) => {
      await run(commands.restore, ['--noflush'], input);
    },
  };
}

/** ip6tables-save / ip6tables-restore. */
export function createIp6tables(): Iptables {
  return createIptables({ save: 'ip6tables-save', restore: 'ip6tables-restore' });
}

export interface InterceptPlan {
  /** The exact iptables-restore input; undefined when there is nothing to do (uninstall of nothing). */
  readonly input: string | undefined;
  /** False when the current rules could not be read (dry run without NET_ADMIN): planned as for a fresh install. */
  readonly isCurrentKnown: boolean;
  /** Set when this family's rules are not installed, saying why (IPv6 only: off, or auto without ip6tables). */
  readonly skipped?: string;
}

/** What install would feed to `iptables-restore --noflush` (or ip6tables-restore), changing nothing. */
export async function planInstall(
  rules: InterceptRules,
  iptables = createIptables(),
  family: IpFamily = 4,
): Promise<InterceptPlan> {
  const current = await saveOrUnknown(iptables);
  return { input: installRestoreInput(rules, current ?? '', family), isCurrentKnown: current !== undefined };
}

/** What uninstall would feed to `iptables-restore --noflush`, changing nothing. */
export async function planUninstall(iptables = createIptables()): Promise<InterceptPlan> {
  const current = await iptables.saveNat();
  return { input: uninstallRestoreInput(current), isCurrentKnown: true };
}

/** Installs (or replaces) the rules; running it again leaves the same single set. */
export async function installInterceptRules(
  rules: InterceptRules,
  iptables = createIptables(),
  family: IpFamily = 4,
): Promise<{ input: string }> {
  const input = installRestoreInput(rules, await iptables.saveNat(), family);
  await iptables.restore(input);
  return { input };
}

/** Removes every MUTUAL_ chain and the jumps into them. Returns the chains removed (none: no-op). */
export async function uninstallInterceptRules(
  iptables = createIptables(),
): Promise<{ input: string | undefined; removedChains: string[] }> {
  const current = await iptables.saveNat();
  const input = uninstallRestoreInput(current);
  if (input !== undefined) await iptables.restore(input);
  return { input, removedChains: installedChains(current) };
}

/** `--ipv6`: auto installs the IPv6 rules when ip6tables can use the nat table here; on insists; off never. */
export type Ipv6Mode = 'auto' | 'on' | 'off';
export const IPV6_MODES: readonly Ipv6Mode[] = ['auto', 'on', 'off'];

export type Ipv6Support = { readonly isUsable: true } | { readonly isUsable: false; readonly reason: string };

/**
 * Whether the IPv6 rules can go in here: `ip6tables-save -t nat` works in this namespace. With
 * `on` an unusable ip6tables is MUTUAL_PROXY_INIT_IPV6_UNAVAILABLE; a refusal for lack of
 * NET_ADMIN is thrown as it is, whatever the mode (the IPv4 rules would be refused too).
 */
export async function ipv6Support(mode: Ipv6Mode, ip6tables = createIp6tables()): Promise<Ipv6Support> {
  if (mode === 'off') return { isUsable: false, reason: '--ipv6 off' };
  let reason: string;
  try {
    const dump = await ip6tables.saveNat();
    if (/^\*nat$/m.test(dump)) return { isUsable: true };
    reason = 'ip6tables-save -t nat printed no nat table';
  } catch (error) {
    if (!(error instanceof MutualError) || error.code === 'MUTUAL_PROXY_INIT_PERMISSION_DENIED') throw error;
    reason = error.message;
  }
  if (mode === 'on') {
    throw new MutualError(
      'MUTUAL_PROXY_INIT_IPV6_UNAVAILABLE',
      `--ipv6 on, but ip6tables cannot use the nat table in this network namespace (${reason}): install ip6tables (Debian: the iptables package) with a kernel that has IPv6 NAT, or use --ipv6 auto to install IPv4 rules only`,
      { detail: { reason } },
    );
  }
  return { isUsable: false, reason };
}

/** The tools of both families. */
export interface DualStackIptables {
  readonly ipv4: Iptables;
  readonly ipv6: Iptables;
}

export function createDualStackIptables(): DualStackIptables {
  return { ipv4: createIptables(), ipv6: createIp6tables() };
}

export interface DualStackInstall {
  readonly ipv4: { readonly input: string };
  /** The IPv6 rules installed, or why not (and, with --ipv6 off, the chains an earlier install left that were removed). */
  readonly ipv6:
    | { readonly input: string }
    | { readonly skipped: string; readonly removedChains: readonly string[] };
}

/**
 * Installs the IPv4 rules and, as `ipv6` decides, the IPv6 ones (decided before anything
 * changes, so `--ipv6 on` without ip6tables changes nothing). With `off`, IPv6 rules an earlier
 * install left are removed, so the result is the same whatever was there before.
 */
export async function installDualStack(
  rules: InterceptRules,
  ipv6: Ipv6Mode,
  iptables = createDualStackIptables(),
): Promise<DualStackInstall> {
  const support = await ipv6Support(ipv6, iptables.ipv6);
  const ipv4 = await installInterceptRules(rules, iptables.ipv4, 4);
  if (support.isUsable) return { ipv4, ipv6: await installInterceptRules(rules, iptables.ipv6, 6) };
  const removedChains =
    ipv6 === 'off'
      ? await uninstallInterceptRules(iptables.ipv6).then(
          (r) => r.removedChains,
          () => [],
        )
      : [];
  return { ipv4, ipv6: { skipped: support.reason, removedChains } };
}

/** What `installDualStack` would feed to each family's restore, changing nothing. */
export async function planDualStackInstall(
  rules: InterceptRules,
  ipv6: Ipv6Mode,
  iptables = createDualStackIptables(),
): Promise<{ ipv4: InterceptPlan; ipv6: InterceptPlan }> {
  const ipv4 = await planInstall(rules, iptables.ipv4, 4);
  const support = await ipv6Support(ipv6, iptables.ipv6).catch((error: unknown) => {
    if (error instanceof MutualError && error.code === 'MUTUAL_PROXY_INIT_PERMISSION_DENIED') {
      return { isUsable: true } as const; // planned as for a fresh install, as IPv4 is
    }
    throw error;
  });
  if (support.isUsable) return { ipv4, ipv6: await planInstall(rules, iptables.ipv6, 6) };
  if (ipv6 === 'off') {
    const removal = await planUninstall(iptables.ipv6).catch(() => ({
      input: undefined,
      isCurrentKnown: false,
    }));
    return { ipv4, ipv6: { ...removal, skipped: support.reason } };
  }
  return { ipv4, ipv6: { input: undefined, isCurrentKnown: false, skipped: support.reason } };
}

/** Removes the MUTUAL_ chains of both families (IPv6: unless `off`, and where ip6tables works). */
export async function uninstallDualStack(
  ipv6: Ipv6Mode,
  iptables = createDualStackIptables(),
): Promise<{
  ipv4: { readonly removedChains: readonly string[] };
  ipv6: { readonly removedChains: readonly string[] } | { readonly skipped: string };
}> {
  const support = await ipv6Support(ipv6, iptables.ipv6);
  const ipv4 = await uninstallInterceptRules(iptables.ipv4);
  if (!support.isUsable) return { ipv4, ipv6: { skipped: support.reason } };
  return { ipv4, ipv6: await uninstallInterceptRules(iptables.ipv6) };
}

/** What `uninstallDualStack` would feed to each family's restore, changing nothing. */
export async function planDualStackUninstall(
  ipv6: Ipv6Mode,
  iptables = createDualStackIptables(),
): Promise<{ ipv4: InterceptPlan; ipv6: InterceptPlan }> {
  const support = await ipv6Support(ipv6, iptables.ipv6);
  const ipv4 = await planUninstall(iptables.ipv4);
  if (!support.isUsable)
    return { ipv4, ipv6: { input: undefined, isCurrentKnown: false, skipped: support.reason } };
  return { ipv4, ipv6: await planUninstall(iptables.ipv6) };
}

async function saveOrUnknown(iptables: Iptables): Promise<string | undefined> {
  try {
    return await iptables.saveNat();
  } catch (error) {
    if (error instanceof MutualError && error.code === 'MUTUAL_PROXY_INIT_PERMISSION_DENIED')
      return undefined;
    throw error;
  }
}

const PERMISSION_DENIED = /permission denied|must be root|operation not permitted/i;

function run(command: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdin.on('error', () => {}); // a tool that exits early closes stdin; its exit status tells why
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new MutualError(
              'MUTUAL_PROXY_INIT_IPTABLES_MISSING',
              `${command} is not installed or not on PATH`,
              {
                cause: error,
              },
            )
          : new MutualError('MUTUAL_PROXY_INIT_FAILED', `${command} could not start: ${error.message}`, {
              cause: error,
            }),
      );
    });
    child.on('close', (code) => {
      if (code === 0) return resolve(stdout);
      const output = stderr.trim() || stdout.trim() || `exit code ${code}`;
      if (PERMISSION_DENIED.test(output)) {
        reject(
          new MutualError(
            'MUTUAL_PROXY_INIT_PERMISSION_DENIED',
            `${command} was refused: this process lacks CAP_NET_ADMIN (${output})`,
            { detail: { command, exitCode: code ?? -1 } },
          ),
        );
      } else {
        reject(
          new MutualError('MUTUAL_PROXY_INIT_FAILED', `${command} ${args.join(' ')} failed: ${output}`, {
            detail: { command, exitCode: code ?? -1 },
          }),
        );
      }
    });
    child.stdin.end(input);
  });
}
