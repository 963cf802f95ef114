// Plain HTTP sent to the webhook's HTTPS port (`curl http://…/inject`): answered with a plain-text
// 400 naming MUTUAL_K8S_WEBHOOK_PLAIN_HTTP (src/tls answerPlainHttp) instead of an empty reply, and
// logged, the first at once, then one line per interval with the count, so that a flood of such
// connections cannot fill the log. The API server never sends it; anything else on the port is
// left to the caller.
import type { Duplex } from 'node:stream';
import { MutualError } from '../../errors.ts';
import { LOG_INTERVAL_MS, sampledLog } from '../../log/index.ts';
import { answerPlainHttp, isPlainHttpError } from '../../tls/index.ts';

export interface PlainHttpRefusalOptions {
  /** The first refusal at once, then at most one line per `logIntervalMs` with the count. */
  readonly log: (line: string) => void;
  readonly logIntervalMs?: number;
}

export interface PlainHttpRefusals {
  /**
   * Answers `error` on `socket` (the TLS socket of a `clientError`) when it is plain HTTP, logs
   * it and returns the refusal to count; undefined, with nothing done, for any other error.
   */
  refuse(error: NodeJS.ErrnoException, socket: Duplex): MutualError | undefined;
  /** Stops the pending log line. */
  close(): void;
}

export function plainHttpRefusals(options: PlainHttpRefusalOptions): PlainHttpRefusals {
  const log = sampledLog<'plain-http'>({
    log: options.log,
    intervalMs: options.logIntervalMs,
    summary: (_counts, total, seconds) =>
      `inject: ${total} more plain HTTP connections answered 400 [MUTUAL_K8S_WEBHOOK_PLAIN_HTTP] in the last ${seconds} s\n`,
  });
  return {
    refuse(error, socket) {
      if (!isPlainHttpError(error)) return undefined;
      const { localPort, remoteAddress, remotePort } = socket as {
        localPort?: number;
        remoteAddress?: string;
        remotePort?: number;
      };
      const refusal = new MutualError(
        'MUTUAL_K8S_WEBHOOK_PLAIN_HTTP',
        `plain HTTP was sent to the injector webhook, whose ${localPort === undefined ? 'port' : `port ${localPort}`} speaks only HTTPS (TLS 1.2 or newer): use https:// instead of http://`,
      );
      // When the client is already gone there is no one to tell; it is counted and logged all the same.
      if (!answerPlainHttp(socket, refusal)) socket.destroy();
      log.report(
        'plain-http',
        () =>
          `inject: plain HTTP from ${remoteAddress}:${remotePort} answered 400 [${refusal.code}]: ${refusal.message}. The API server calls the webhook over HTTPS; later ones are summed up every ${(options.logIntervalMs ?? LOG_INTERVAL_MS) / 1000} s\n`,
      );
      return refusal;
    },
    close: log.close,
  };
}
