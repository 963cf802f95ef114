// Debian's chromium for the dashboard's browser tests (driven by playwright-core): where it is, or
// why the tests skip.
import { execFileSync } from 'node:child_process';

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
