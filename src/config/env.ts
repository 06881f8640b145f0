/**
 * `${VAR}` and `${VAR:-default}` substitution in one configuration value.
 * `${VAR:-default}` takes the default when VAR is unset or empty, as in POSIX shells;
 * `$${` writes a literal `${`.
 */
export interface Substitution {
  value: string;
  problems: Array<{ message: string; /** index of the offending `${` in the input */ index: number }>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function substituteEnv(input: string, env: Readonly<Record<string, string | undefined>>): Substitution {
  const problems: Substitution['problems'] = [];
  let value = '';
  let i = 0;
  while (i < input.length) {
    const start = input.indexOf('$', i);
    if (start === -1) {
      value += input.slice(i);
      break;
    }
    value += input.slice(i, start);
    if (input.startsWith('$${', start)) {
      value += '${';
      i = start + 3;
      continue;
    }
    if (!input.startsWith('${', start)) {
      value += '$';
      i = start + 1;
      continue;
    }
    const end = input.indexOf('}', start + 2);
    if (end === -1) {
      problems.push({ index: start, message: `unclosed "\${" (write "$\${" for a literal "\${")` });
      value += input.slice(start);
      break;
    }
    const body = input.slice(start + 2, end);
    const separator = body.indexOf(':-');
    const name = separator === -1 ? body : body.slice(0, separator);
    if (!NAME.test(name)) {
      problems.push({ index: start, message: `"\${${body}}" is not a variable reference: write \${NAME} or \${NAME:-default}` });
    } else {
      const found = env[name];
      if (separator !== -1) {
        value += found === undefined || found === '' ? body.slice(separator + 2) : found;
      } else if (found === undefined) {
        problems.push({ index: start, message: `environment variable ${name} is not set and has no default (write \${${name}:-default} to give one)` });
      } else {
        value += found;
      }
    }
    i = end + 1;
  }
  return { value, problems };
}
