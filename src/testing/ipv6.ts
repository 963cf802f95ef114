// For tests of listeners on 0.0.0.0 that must answer over IPv6 too: whether this host has IPv6
// ([::1] can be bound), and curl's status code for a URL (IPv6 literals in brackets allowed).
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { hasCommand } from '../mesh/netns/index.ts';

const run = promisify(execFile);

export async function hasIpv6Loopback(): Promise<boolean> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen({ host: '::1', port: 0 }, () => probe.close(() => resolve(true)));
  });
}

/** Why an IPv6 test over curl cannot run here, or undefined when it can. */
export async function ipv6CurlSkipReason(): Promise<string | undefined> {
  if (!hasCommand('curl')) return 'curl is not installed';
  return (await hasIpv6Loopback()) ? undefined : 'this host has no IPv6 (::1)';
}

/** The HTTP status curl got for `url` ('200' …), or 'failed: <curl's error>'. */
export function curlStatus(url: string, extra: readonly string[] = []): Promise<string> {
  return run('curl', ['-sS', '-g', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', ...extra, url]).then(
    (result) => result.stdout,
    (error: { stderr?: string }) => `failed: ${error.stderr ?? error}`,
  );
}
