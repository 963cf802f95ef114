import type { Clock } from '../clock.ts';

/** What a command needs from the outside world, passed in so tests can run commands in-process. */
export interface CliContext {
  readonly clock: Clock;
  readonly cwd: string;
  readonly isColor: boolean;
  write(text: string): void;
  writeError(text: string): void;
  /** Set the exit code without exiting, so output is flushed first. */
  setExitCode(code: number): void;
  /**
   * Resolves with the signal name when the user asks a daemon to stop (Ctrl-C, SIGTERM), and with
   * `isHangupToo` when its terminal goes away (SIGHUP): for a command that must not die of it with
   * what it started left running. Others keep SIGHUP (a sidecar reloads its files on it).
   */
  untilShutdown(options?: { isHangupToo?: boolean }): Promise<string>;
}

export type OutputFormat = 'text' | 'json';
