// Debian's chromium for the dashboard's browser tests (driven by playwright-core): where it is, or
// why the tests skip.
import { execFileSync } from 'node:child_process';
import { type Browser, chromium } from 'playwright-core';

function chromiumPath(): string | undefined {
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const executablePath = chromiumPath();
export const skip = executablePath
  ? false
  : 'chromium is not installed (apt-get install chromium; .ci/run does)';

/** Headless Chromium as every browser test runs it (as root in CI: no sandbox; no GPU, no updates). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: executablePath!,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
}
