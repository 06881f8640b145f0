import { test } from 'node:test';
import assert from 'node:assert/strict';
import { substituteEnv } from '../../../src/config/env.js';

const ENV = { HOST: 'rabbit', PORT: '5672', EMPTY: '' } as const;

const missing = (name: string): string => `environment variable ${name} is not set and has no default (write \${${name}:-default} to give one)`;
const malformed = (body: string): string => `"\${${body}}" is not a variable reference: write \${NAME} or \${NAME:-default}`;
const UNCLOSED = 'unclosed "${" (write "$${" for a literal "${")';

test('substituteEnv - text without "$" is returned as it is', () => {
  assert.deepEqual(substituteEnv('amqp://guest@localhost', ENV), { value: 'amqp://guest@localhost', problems: [] });
  assert.deepEqual(substituteEnv('', ENV), { value: '', problems: [] });
});

test('substituteEnv - ${VAR} is replaced by the variable', () => {
  assert.deepEqual(substituteEnv('${HOST}', ENV), { value: 'rabbit', problems: [] });
  assert.deepEqual(substituteEnv('amqp://${HOST}:${PORT}/vh', ENV), { value: 'amqp://rabbit:5672/vh', problems: [] });
  assert.deepEqual(substituteEnv('${HOST}${HOST}', ENV), { value: 'rabbitrabbit', problems: [] });
});

test('substituteEnv - ${VAR} set to "" is replaced by "" without a problem', () => {
  assert.deepEqual(substituteEnv('[${EMPTY}]', ENV), { value: '[]', problems: [] });
});

test('substituteEnv - ${VAR:-default} uses the variable when it is set and not empty', () => {
  assert.deepEqual(substituteEnv('${PORT:-1883}', ENV), { value: '5672', problems: [] });
});

test('substituteEnv - ${VAR:-default} uses the default when the variable is unset', () => {
  assert.deepEqual(substituteEnv('${MQTT_PORT:-1883}', ENV), { value: '1883', problems: [] });
  assert.deepEqual(
    substituteEnv('${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}', ENV),
    { value: 'amqp://guest:guest@127.0.0.1:5672', problems: [] },
  );
});

test('substituteEnv - ${VAR:-default} uses the default when the variable is empty', () => {
  assert.deepEqual(substituteEnv('${EMPTY:-fallback}', ENV), { value: 'fallback', problems: [] });
});

test('substituteEnv - an empty default is allowed (${VAR:-})', () => {
  assert.deepEqual(substituteEnv('a${NOPE:-}b', ENV), { value: 'ab', problems: [] });
  assert.deepEqual(substituteEnv('${HOST:-}', ENV), { value: 'rabbit', problems: [] });
});

test('substituteEnv - a default may itself contain ":-"', () => {
  assert.deepEqual(substituteEnv('${NOPE:-a:-b}', ENV), { value: 'a:-b', problems: [] });
});

test('substituteEnv - variable names are case-sensitive', () => {
  assert.deepEqual(substituteEnv('${host:-lower}', ENV), { value: 'lower', problems: [] });
});

test('substituteEnv - "$${" writes a literal "${"', () => {
  assert.deepEqual(substituteEnv('$${HOST}', ENV), { value: '${HOST}', problems: [] });
  assert.deepEqual(substituteEnv('pa$${ss', ENV), { value: 'pa${ss', problems: [] });
  assert.deepEqual(substituteEnv('$${HOST}=${HOST}', ENV), { value: '${HOST}=rabbit', problems: [] });
});

test('substituteEnv - "$" not followed by "{" is left untouched', () => {
  assert.deepEqual(substituteEnv('pa$$word$', ENV), { value: 'pa$$word$', problems: [] });
  assert.deepEqual(substituteEnv('$HOST', ENV), { value: '$HOST', problems: [] });
  assert.deepEqual(substituteEnv('$', ENV), { value: '$', problems: [] });
  assert.deepEqual(substituteEnv('a $ b', ENV), { value: 'a $ b', problems: [] });
  assert.deepEqual(substituteEnv('{HOST}', ENV), { value: '{HOST}', problems: [] });
});

test('substituteEnv - a missing variable without default is a problem at the index of its "${"', () => {
  assert.deepEqual(substituteEnv('${NOPE}', ENV), { value: '', problems: [{ index: 0, message: missing('NOPE') }] });
  assert.deepEqual(substituteEnv('port: ${MQTT_PORT}', ENV), { value: 'port: ', problems: [{ index: 6, message: missing('MQTT_PORT') }] });
});

test('substituteEnv - every missing variable is reported, each with its own index', () => {
  assert.deepEqual(substituteEnv('p${A}q${HOST}r${B}s', ENV), {
    value: 'pqrabbitrs',
    problems: [
      { index: 1, message: missing('A') },
      { index: 14, message: missing('B') },
    ],
  });
  assert.deepEqual(substituteEnv('${A}${A}', ENV), {
    value: '',
    problems: [
      { index: 0, message: missing('A') },
      { index: 4, message: missing('A') },
    ],
  });
});

test('substituteEnv - the index counts from the input, before any escape is shortened', () => {
  assert.deepEqual(substituteEnv('$${x}${NOPE}', ENV), { value: '${x}', problems: [{ index: 5, message: missing('NOPE') }] });
});

test('substituteEnv - a reference that is not a name is a problem (malformed)', () => {
  assert.deepEqual(substituteEnv('${}', ENV), { value: '', problems: [{ index: 0, message: malformed('') }] });
  assert.deepEqual(substituteEnv('x${1A}y', ENV), { value: 'xy', problems: [{ index: 1, message: malformed('1A') }] });
  assert.deepEqual(substituteEnv('${A B}', ENV), { value: '', problems: [{ index: 0, message: malformed('A B') }] });
  assert.deepEqual(substituteEnv('${A-b}', ENV), { value: '', problems: [{ index: 0, message: malformed('A-b') }] });
  assert.deepEqual(substituteEnv('${:-x}', ENV), { value: '', problems: [{ index: 0, message: malformed(':-x') }] });
});

test('substituteEnv - an unclosed "${" is a problem and the rest is kept as written', () => {
  assert.deepEqual(substituteEnv('amqp://${HOST', ENV), { value: 'amqp://${HOST', problems: [{ index: 7, message: UNCLOSED }] });
  assert.deepEqual(substituteEnv('${HOST}/${', ENV), { value: 'rabbit/${', problems: [{ index: 8, message: UNCLOSED }] });
});

test('substituteEnv - problems of different kinds are reported in input order', () => {
  assert.deepEqual(substituteEnv('${1}-${NOPE}-${', ENV), {
    value: '--${',
    problems: [
      { index: 0, message: malformed('1') },
      { index: 5, message: missing('NOPE') },
      { index: 13, message: UNCLOSED },
    ],
  });
});

test('substituteEnv - the environment is only read, never written', () => {
  const env: Record<string, string | undefined> = { A: 'x', U: undefined };
  substituteEnv('${A}${B:-d}${U:-e}', env);
  assert.deepEqual(env, { A: 'x', U: undefined });
});

test('substituteEnv - a variable explicitly undefined counts as unset', () => {
  assert.deepEqual(substituteEnv('${U}', { U: undefined }), { value: '', problems: [{ index: 0, message: missing('U') }] });
  assert.deepEqual(substituteEnv('${U:-d}', { U: undefined }), { value: 'd', problems: [] });
});

test('substituteEnv - a substituted value is not substituted again', () => {
  assert.deepEqual(substituteEnv('${REF}', { REF: '${HOST}', HOST: 'h' }), { value: '${HOST}', problems: [] });
});
