// Test "pods": Linux network namespaces on a private bridge, with addresses in 198.18.0.0/15 and
// IPv6 ones in 2001:2::/48 (both benchmarking ranges, RFC 2544 / RFC 5180): every pod is dual-stack.
// The bridge lives in a namespace of its own, so nothing is added to the host's network (no
// interface, route or iptables rule) and parallel test runs never collide. Root only. The
// namespace, bridge and veth steps are the ones `mutual up --isolation netns` uses.
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  addBridge,
  addNamespace,
  addPodLink,
  hasCommand,
  inNamespace,
  ip,
  netnsUnavailableReason,
} from '../mesh/netns/index.ts';

export { hasCommand };

export interface ExecResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PodRunOptions {
  /** Run as this uid (and gid) inside the pod, through setpriv. */
  readonly uid?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** exec only: kill the command after this long (default 30 s). */
  readonly timeoutMs?: number;
  /** exec only: written to the command's stdin. */
  readonly input?: string;
}

export interface Pod {
  readonly name: string;
  /** Name of its network namespace, for `ip netns exec`. */
  readonly netns: string;
  /** Its address on the pod network (198.18.0.0/15). */
  readonly address: string;
  /** Its IPv6 address on the same link (2001:2::/64, a slice of the RFC 5180 benchmarking range). */
  readonly address6: string;
  /** Runs a command in the pod to completion; never rejects on a non-zero exit. */
  exec(command: string, args: readonly string[], options?: PodRunOptions): Promise<ExecResult>;
  /** Starts a long-running command in the pod; `close()` of the network kills it. */
  spawn(command: string, args: readonly string[], options?: PodRunOptions & SpawnOptions): ChildProcess;
}

export interface PodNetwork {
  /** Unique per network: the prefix, this process id and a random part. */
  readonly id: string;
  readonly pods: readonly Pod[];
  /** Adds a pod (its own netns, a veth on the bridge, the next free address). */
  addPod(name: string): Promise<Pod>;
  /** Kills what the pods run and deletes every namespace; safe to call twice. */
  close(): Promise<void>;
}

const PREFIX_LENGTH = 15; // every pod network is 198.18.0.0/15
const PREFIX_LENGTH6 = 64; // and 2001:2::/64

/** Why pod networks cannot be made here, or undefined when they can (tests skip with the reason). */
export function canUseNetns(): string | undefined {
  const reason = netnsUnavailableReason(['ip']);
  return reason?.includes('need root') ? `${reason}: run the tests as root, as CI does` : reason;
}

/** Creates an empty pod network; add pods with `addPod`. Removed on `close()` or process exit. */
export async function createPodNetwork(options: { prefix: string }): Promise<PodNetwork> {
  if (!/^[a-z][a-z0-9]{0,11}$/.test(options.prefix)) {
    throw new Error(`pod network prefix ${JSON.stringify(options.prefix)}: use 1-12 of [a-z0-9]`);
  }
  const id = `${options.prefix}-${process.pid.toString(36)}-${randomBytes(3).toString('hex')}`;
  const bridgeNetns = `${id}-net`;
  const namespaces: string[] = [];
  const children = new Set<ChildProcess>();
  const pods: Pod[] = [];
  let isClosed = false;

  const removeNow = () => {
    for (const child of children) child.kill('SIGKILL');
    for (const netns of namespaces.splice(0).reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
      } catch {}
    }
  };
  process.once('exit', removeNow);

  const addNetns = async (netns: string) => {
    namespaces.push(netns);
    await addNamespace(netns);
  };
  try {
    await addNetns(bridgeNetns);
    await addBridge(bridgeNetns);
  } catch (error) {
    removeNow();
    throw error;
  }

  const network: PodNetwork = {
    id,
    pods,
    async addPod(name) {
      if (isClosed) throw new Error(`pod network ${id} is closed`);
      if (!/^[a-z][a-z0-9-]{0,15}$/.test(name))
        throw new Error(`pod name ${JSON.stringify(name)}: use [a-z0-9-]`);
      const index = pods.length;
      const netns = `${id}-${name}`;
      const address = podAddress(index);
      await addNetns(netns);
      await addPodLink({ bridgeNetns, veth: `veth${index}`, netns, address, prefixLength: PREFIX_LENGTH });
      // nodad: usable at once (duplicate address detection would hold it "tentative" for a second or two).
      const address6 = podAddress6(index);
      await ip(['-n', netns, 'addr', 'add', `${address6}/${PREFIX_LENGTH6}`, 'dev', 'eth0', 'nodad']);
      const pod = createPod(name, netns, address, address6, children);
      pods.push(pod);
      return pod;
    },
    async close() {
      if (isClosed) return;
      isClosed = true;
      process.removeListener('exit', removeNow);
      await Promise.all(
        [...children].map(async (child) => {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise((resolve) => child.once('exit', resolve));
            child.kill('SIGKILL');
            await exited;
          }
        }),
      );
      removeNow();
    },
  };
  return network;
}

function createPod(
  name: string,
  netns: string,
  address: string,
  address6: string,
  children: Set<ChildProcess>,
): Pod {
  const argv = (command: string, args: readonly string[], uid?: number) =>
    inNamespace(netns, [command, ...args], uid === undefined ? undefined : { uid }).slice(1);
  return {
    name,
    netns,
    address,
    address6,
    exec(command, args, options = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn('ip', argv(command, args, options.uid), {
          env: options.env ?? process.env,
          cwd: options.cwd,
          timeout: options.timeoutMs ?? 30_000,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
        });
        child.stderr!.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        child.stdin!.on('error', () => {});
        child.stdin!.end(options.input ?? '');
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    },
    spawn(command, args, options = {}) {
      const { uid, env, cwd, timeoutMs: _t, input: _i, ...spawnOptions } = options;
      const child = spawn('ip', argv(command, args, uid), {
        stdio: ['ignore', 'pipe', 'pipe'],
        ...spawnOptions,
        env: env ?? process.env,
        cwd,
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
  };
}

/** The n-th pod's address: 198.18.0.2, 198.18.0.3, … (198.18.0.1 is left for a gateway). */
function podAddress(index: number): string {
  const host = index + 2;
  if (host > 65_000) throw new Error('too many pods on one network');
  return `198.18.${host >> 8}.${host & 255}`;
}

/** The n-th pod's IPv6 address: 2001:2::2, 2001:2::3, … (the same host numbers as IPv4). */
function podAddress6(index: number): string {
  return `2001:2::${(index + 2).toString(16)}`;
}
