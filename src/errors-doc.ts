// Renders docs/errors.md from the error catalog, so the documentation can never miss a code.
// `npm run docs:errors` rewrites the file; a test fails when it is out of date.
import { writeFileSync } from 'node:fs';
import { errorCatalog } from './errors.ts';

const AREAS: Record<string, string> = {
  SPIFFE: 'SPIFFE IDs',
  PKI: 'Certificates, keys and verification',
  IDENTITY: 'Identity service',
  PROXY: 'Sidecar proxy and interception',
  POLICY: 'Policy',
  MESH: 'The mesh on one machine',
  DASHBOARD: 'Dashboard',
  DESTINATION: 'Destination service',
  K8S: 'Kubernetes',
  IO: 'Files',
  CLI: 'Command line',
  INTERNAL: 'Internal',
};

export function renderErrorsMarkdown(): string {
  const lines = [
    '# Mutual error codes',
    '',
    '<!-- Generated from src/errors.ts by `npm run docs:errors`; edit the catalog, not this file. -->',
    '',
    'Every error Mutual reports carries one of these codes, printed as `error[CODE]: message`',
    'by the CLI and returned as `code` by the APIs. Codes are stable: search for them, match on',
    'them in scripts. The message names the input that was wrong; the hint says what to do.',
    '',
  ];
  let currentArea = '';
  for (const [code, description] of Object.entries(errorCatalog)) {
    const area = code.split('_')[1] ?? '';
    if (area !== currentArea) {
      currentArea = area;
      lines.push(`## ${AREAS[area] ?? area}`, '');
    }
    lines.push(
      `### ${code}`,
      '',
      `**Meaning:** ${description.meaning}`,
      '',
      `**What to do:** ${description.action}`,
      '',
    );
  }
  return lines.join('\n');
}

if (process.argv[1]?.endsWith('errors-doc.js') && process.argv[2] === '--write') {
  writeFileSync(new URL('../../docs/errors.md', import.meta.url), renderErrorsMarkdown());
}
