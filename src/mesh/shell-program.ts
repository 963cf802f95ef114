// mesh.yaml's `command: redis-server --port $PORT` runs as `/bin/sh -c '…'`, so the program `up`
// checked before starting was /bin/sh, always there: a misspelt or missing program in a string
// command (`command: pythn3 -m http.server $PORT`, `command: serve.sh` for ./serve.sh) passed,
// and the app exited with 127 "not found" once the mesh was starting or, for an app with no port,
// after "The mesh is up", restarting in a loop. This finds the program such a command runs first
// where that can be told without a shell; anything else is left to the shell.

/** A string command as mesh-config turns it into a list: `/bin/sh -c SCRIPT`. */
export function isShellCommand(command: readonly string[]): boolean {
  return command[0] === '/bin/sh' && command[1] === '-c' && command[2] !== undefined;
}

/** Words /bin/sh (dash, or bash as sh) runs itself: no program on PATH is needed for them. */
const SHELL_WORDS = new Set([
  // Reserved words.
  '!',
  '{',
  '}',
  'case',
  'do',
  'done',
  'elif',
  'else',
  'esac',
  'fi',
  'for',
  'function',
  'if',
  'in',
  'select',
  'then',
  'time',
  'until',
  'while',
  '[[',
  // Builtins of dash and bash.
  '.',
  ':',
  '[',
  'alias',
  'bg',
  'break',
  'builtin',
  'cd',
  'chdir',
  'command',
  'continue',
  'declare',
  'echo',
  'eval',
  'exec',
  'exit',
  'export',
  'false',
  'fg',
  'getopts',
  'hash',
  'jobs',
  'kill',
  'let',
  'local',
  'printf',
  'pwd',
  'read',
  'readonly',
  'return',
  'set',
  'shift',
  'source',
  'test',
  'times',
  'trap',
  'true',
  'type',
  'typeset',
  'ulimit',
  'umask',
  'unalias',
  'unset',
  'wait',
]);

/**
 * The program a `/bin/sh -c` script starts with, or undefined when only a shell could tell (a
 * quote, `$`, a glob, `~` or an escape in it, a variable assignment before it) or the shell runs it
 * itself (`while`, `exec`, `cd` …).
 */
export function shellScriptProgram(script: string): string | undefined {
  const word = /^\s*([^\s;&|<>()]+)/.exec(script)?.[1];
  if (word === undefined || SHELL_WORDS.has(word)) return undefined;
  return /["'`$*?[\]{}~\\=#!]/.test(word) ? undefined : word;
}
