// Runs every benchmark in this folder (`*.bench.js` after the build), one after another, or only
// those whose file name contains one of the arguments: `npm run bench -- proxy`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
/** Run only when named: the soak lasts 40 minutes by default, longer than all the rest together. */
const ON_REQUEST = ['soak.bench.js'];
const benches = readdirSync(here)
  .filter((name) => name.endsWith('.bench.js'))
  .filter((name) =>
    filters.length === 0 ? !ON_REQUEST.includes(name) : filters.some((filter) => name.includes(filter)),
  )
  .sort();
if (filters.length === 0)
  console.log(
    `(not run unless named: ${ON_REQUEST.map((name) => `npm run bench -- ${name.split('.')[0]}`).join(', ')})`,
  );
if (benches.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ')}; have: ${readdirSync(here).join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const bench of benches) {
  console.log(`\n=== ${bench} ===`);
  const result = spawnSync(process.execPath, [join(here, bench)], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
