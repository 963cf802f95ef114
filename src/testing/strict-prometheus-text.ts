// Test support: a strict reader of the Prometheus text format (0.0.4), for asserting that what the
// daemons' /metrics serve is well formed: every line is a HELP, a TYPE, a comment or one sample;
// label values use only the \\ \" \n escapes. Throws naming the line on anything else. (The
// mesh's own reader, mesh/prometheus-text.ts, skips what it cannot read instead.)

export interface StrictSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf)|NaN)$/;

export function parseStrictPrometheusText(text: string): StrictSample[] {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const samples: StrictSample[] = [];
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, index) => {
    const fail = (why: string): never => {
      throw new Error(`line ${index + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line.startsWith('#')) {
      const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (help && /\\(?![\\n])/.test(help[2]!)) fail('HELP text with an escape other than \\\\ or \\n');
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (type && !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type[2]!))
        fail('unknown TYPE');
      return;
    }
    if (line.trim() === '') return;
    const name = NAME.exec(line)?.[0] ?? fail('no metric name');
    let at = name.length;
    const labels: Record<string, string> = {};
    if (line[at] === '{') {
      at++;
      while (line[at] !== '}') {
        const labelName = LABEL_NAME.exec(line.slice(at))?.[0] ?? fail(`no label name at column ${at + 1}`);
        at += labelName.length;
        if (line.slice(at, at + 2) !== '="') fail(`no =" after label ${labelName}`);
        at += 2;
        let value = '';
        for (;;) {
          const char = line[at] ?? fail(`label ${labelName} is not closed`);
          at++;
          if (char === '"') break;
          if (char !== '\\') {
            value += char;
            continue;
          }
          const escaped = line[at++];
          if (escaped === '\\') value += '\\';
          else if (escaped === '"') value += '"';
          else if (escaped === 'n') value += '\n';
          else fail(`label ${labelName} has the escape \\${escaped ?? ''}`);
        }
        if (labelName in labels) fail(`label ${labelName} twice`);
        labels[labelName] = value;
        if (line[at] === ',') at++;
        else if (line[at] !== '}') fail(`expected , or } at column ${at + 1}`);
      }
      at++;
    }
    const rest = line.slice(at);
    const fields =
      /^ (\S+)(?: (-?\d+))?$/.exec(rest) ?? fail('expected " VALUE [TIMESTAMP]" after the labels');
    if (!VALUE.test(fields[1]!)) fail(`the value ${fields[1]} is not a number`);
    samples.push({ name, labels, value: Number(fields[1]!.replace('Inf', 'Infinity')) });
  });
  return samples;
}
