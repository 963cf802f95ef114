// Test support: test/proxy/fixtures/tls_key_updates.py's client, the system's OpenSSL (libssl
// through ctypes) sending TLS 1.3 KeyUpdates with update_requested, then one HTTP request.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** Why the KeyUpdate tests skip, or false: they need python3 and the system libssl. */
export const keyUpdateClientMissing: string | false =
  spawnSync('python3', ['-c', "import ctypes.util; assert ctypes.util.find_library('ssl')"], {
    stdio: 'ignore',
  }).status === 0
    ? false
    : 'needs python3 and libssl (the system OpenSSL)';

/** Where the fixture is, from dist/test/proxy. */
export const KEY_UPDATES_FIXTURE = join(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'test',
  'proxy',
  'fixtures',
  'tls_key_updates.py',
);

export interface KeyUpdateResult {
  readonly handshake?: boolean;
  readonly sent?: number;
  /** The status line of the answer, '' when the connection was closed first. */
  readonly answer?: string;
  readonly [key: string]: unknown;
}

/**
 * Connects to 127.0.0.1:`port` (with a client certificate when `certFile` and `keyFile` are
 * given), sends `count` KeyUpdates, then GET `path`; resolves with the fixture's JSON line.
 */
export function keyUpdatesThenRequest(options: {
  port: number | string;
  count: number;
  path: string;
  certFile?: string;
  keyFile?: string;
}): Promise<KeyUpdateResult> {
  const args = [
    KEY_UPDATES_FIXTURE,
    'client',
    String(options.port),
    options.certFile ?? '-',
    options.keyFile ?? '-',
    String(options.count),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('python3', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REQUEST_PATH: options.path },
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as KeyUpdateResult);
      } catch {
        reject(new Error(`the fixture printed no result:\n${out}`));
      }
    });
  });
}
