import { errorCatalog, MutualError } from '../errors.ts';

/** Where a resource or a field came from: a file and a 1-based line and column. */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** One problem found in policy files: an error (the set is refused) or a warning (a trap). */
export interface PolicyDiagnostic extends SourcePosition {
  readonly severity: 'error' | 'warning';
  /** An error code from src/errors.ts, or a warning name such as `root-namespace-selector`. */
  readonly code: string;
  /** `ns/name` of the policy, when the problem belongs to one. */
  readonly policy?: string;
  readonly message: string;
  /** What to do about it. */
  readonly hint: string;
}

export function formatDiagnostic(diagnostic: PolicyDiagnostic): string {
  const where = `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}`;
  const label = diagnostic.severity === 'error' ? `error[${diagnostic.code}]` : `warning[${diagnostic.code}]`;
  const policy = diagnostic.policy ? ` (${diagnostic.policy})` : '';
  return `${where}: ${label}${policy}: ${diagnostic.message}\n  hint: ${diagnostic.hint}`;
}

const MAX_LISTED_ERRORS = 20;

/** One error for a whole failed load, listing every problem; `detail.count` says how many. */
export function diagnosticsError(errors: readonly PolicyDiagnostic[]): MutualError {
  const first = errors[0]!;
  const code =
    first.code in errorCatalog ? (first.code as keyof typeof errorCatalog) : 'MUTUAL_POLICY_INVALID';
  // Listed up to a bound: a file that is not YAML at all gives one error per line or two.
  const listed = errors.slice(1, MAX_LISTED_ERRORS);
  const unlisted = errors.length - 1 - listed.length;
  const more =
    errors.length > 1
      ? `\n${errors.length - 1} more:\n${listed.map(formatLine).join('\n')}${unlisted > 0 ? `\n… and ${unlisted} more (is it a policy file? \`mutual policy check FILE -o json\` lists them all)` : ''}`
      : '';
  return new MutualError(code, `${formatLine(first)}${more}`, {
    detail: { file: first.file, line: first.line, column: first.column, count: errors.length },
  });
}

function formatLine(diagnostic: PolicyDiagnostic): string {
  return `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.message}`;
}
