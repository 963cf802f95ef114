import { spawn } from 'node:child_process';
import { MutualError } from '../../errors.ts';
import {
  type InterceptRules,
  installedChains,
  installRestoreInput,
  uninstallRestoreInput,
} from './iptables-rules.ts';

// Applies the interception rules with iptables-save / iptables-restore: one atomic transaction
// per install or uninstall. Needs CAP_NET_ADMIN; without it, fails with a coded error.

/** The two iptables tools, behind an interface so another backend (ip6tables, a netns) fits in. */
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

export interface InterceptPlan {
  /** The exact iptables-restore input; undefined when there is nothing to do (uninstall of nothing). */
  readonly input: string | undefined;
  /** False when the current rules could not be read (dry run without NET_ADMIN): planned as for a fresh install. */
  readonly isCurrentKnown: boolean;
}

/** What install would feed to `iptables-restore --noflush`, changing nothing. */
export async function planInstall(
  rules: InterceptRules,
  iptables = createIptables(),
): Promise<InterceptPlan> {
  const current = await saveOrUnknown(iptables);
  return { input: installRestoreInput(rules, current ?? ''), isCurrentKnown: current !== undefined };
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
): Promise<{ input: string }> {
  const input = installRestoreInput(rules, await iptables.saveNat());
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
