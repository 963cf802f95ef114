import { MutualError } from '../errors.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (loopback). Port 0 picks a free port. */
export function parseListenAddress(text: string, flag: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `${flag} ${JSON.stringify(text)} is not an address: write HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443`,
    );
  }
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}
