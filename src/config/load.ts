import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Document, LineCounter, isMap, isScalar, isNode, parseDocument, visit, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { ConfigError, MappingError, type ConfigProblem } from '../errors.js';
import { compileDownlinkRule } from '../mapping/downlink.js';
import { compileUplinkRule } from '../mapping/uplink.js';
import { substituteEnv } from './env.js';
import { lintConfig } from './lint.js';
import { configSchema, downlinkRuleSchema, uplinkRuleSchema, usersFileSchema, type BridgeConfig, type UserSettings } from './schema.js';
import { objectSchemaAt, shapeKeys } from './schema-walk.js';
import { suggest } from './suggest.js';

export interface LoadOptions {
  /** Variables for `${VAR}` substitution; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

type Path = ReadonlyArray<string | number>;

/**
 * Where an entry of a loaded configuration is written, as `FILE:LINE:COL`, by its path as
 * problems name it (`amqp.exchanges[1].durable`); an entry the file leaves to its default is
 * placed at the nearest one that is written.
 */
export type ConfigLocator = (path: string) => string;

/** A configuration and where each of its entries is in its file. */
export interface LocatedConfig {
  config: BridgeConfig;
  locate: ConfigLocator;
}

/** Reads, substitutes, parses, validates and freezes a configuration file. Throws ConfigError. */
export function loadConfigFile(file: string, options: LoadOptions = {}): BridgeConfig {
  return loadConfigText(readConfigFile(file), file, options);
}

/**
 * As loadConfigFile, with a locator of its entries, so that the running bridge can name the
 * line of what RabbitMQ refuses.
 */
export function loadLocatedConfigFile(file: string, options: LoadOptions = {}): LocatedConfig {
  const { config, problemAt } = parseConfig(readConfigFile(file), file, options);
  return { config, locate: locator(file, problemAt) };
}

function locator(file: string, problemAt: (path: Path, message: string) => ConfigProblem): ConfigLocator {
  return (path) => {
    const { line, col } = problemAt(parsePath(path), '');
    return `${file}:${line}:${col}`;
  };
}

/** As loadLocatedConfigFile, with the linter's warnings about the valid configuration, each at its FILE:LINE:COL. */
export function validateConfigFile(file: string, options: LoadOptions = {}): LocatedConfig & { warnings: ConfigProblem[] } {
  const { config, problemAt } = parseConfig(readConfigFile(file), file, options);
  return { config, locate: locator(file, problemAt), warnings: sortProblems(lintConfig(config).map((warning) => problemAt(warning.path, warning.message))) };
}

/** As loadConfigFile, for text already read; `file` only names it in messages. */
export function loadConfigText(text: string, file: string, options: LoadOptions = {}): BridgeConfig {
  return parseConfig(text, file, options).config;
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new ConfigError('BRIDGE_ERR_CONFIG_READ', [{ file, line: 1, col: 1, path: '', message: `cannot read configuration: ${reason}` }], { cause: error });
  }
}

/** The frozen configuration, and where a path of it is in the file (for the linter's warnings). */
function parseConfig(
  text: string,
  file: string,
  options: LoadOptions,
): { config: BridgeConfig; problemAt: (path: Path, message: string) => ConfigProblem } {
  const env = options.env ?? process.env;
  const { data, parsed, problems, doc, at } = readYaml(text, file, configSchema, env);
  const problemAt = (path: Path, message: string) => at(offsetOf(doc, writtenPath(doc, path)), path, message);
  problems.push(...checkRules(data, problemAt));
  let config = parsed && resolveFiles(parsed, dirname(file));
  if (config) problems.push(...missingFiles(config, problemAt));
  if (config?.auth) {
    const users: PlacedUser[] = config.auth.users.map((user, index) => {
      const path = ['auth', 'users', index, 'username'];
      return { user, problem: (message) => problemAt(path, `${formatPath(path)}: ${message}`) };
    });
    // The users file's users join auth.users here, so a reload that changes only that file is seen as an auth change.
    if (config.auth.usersFile !== undefined) users.push(...readUsersFile(config.auth.usersFile, env, problems));
    problems.push(...duplicateUsers(users));
    config = { ...config, auth: { ...config.auth, users: users.map(({ user }) => user) } };
  }
  if (problems.length > 0 || !config) throw new ConfigError('BRIDGE_ERR_CONFIG_INVALID', sortProblems(problems));
  return { config: deepFreeze(config), problemAt };
}

/** Files named in the configuration (certificates, keys, the users file, the session file, Redis' TLS files) are relative to its folder. */
function resolveFiles(config: z.output<typeof configSchema>, folder: string): z.output<typeof configSchema> {
  const at = (path: string) => resolve(folder, path);
  const sessionFile = config.mqtt.sessionFile;
  const listeners = config.mqtt.listeners.map((listener) =>
    listener.type === 'tls' || listener.type === 'wss'
      ? { ...listener, cert: at(listener.cert), key: at(listener.key), ...(listener.ca ? { ca: at(listener.ca) } : {}) }
      : listener,
  );
  const auth = config.auth?.usersFile ? { ...config.auth, usersFile: at(config.auth.usersFile) } : config.auth;
  const tls = config.amqp.tls;
  const amqpTls = tls && {
    ...tls,
    ...(tls.ca ? { ca: at(tls.ca) } : {}),
    ...(tls.cert ? { cert: at(tls.cert) } : {}),
    ...(tls.key ? { key: at(tls.key) } : {}),
  };
  const persistence = config.mqtt.persistence;
  const redisTls = persistence.type === 'redis' && persistence.tls;
  const mqtt = {
    ...config.mqtt,
    listeners,
    ...(sessionFile ? { sessionFile: at(sessionFile) } : {}),
    ...(redisTls ? { persistence: { ...persistence, tls: { ...(redisTls.ca ? { ca: at(redisTls.ca) } : {}), ...(redisTls.cert ? { cert: at(redisTls.cert) } : {}), ...(redisTls.key ? { key: at(redisTls.key) } : {}) } } } : {}),
  };
  return { ...config, mqtt, amqp: { ...config.amqp, ...(amqpTls ? { tls: amqpTls } : {}) }, ...(auth ? { auth } : {}) };
}

/** Certificates, keys and CA files (listeners, AMQP, Redis) that cannot be read: reported by `validate`, not at the first connection. */
function missingFiles(config: z.output<typeof configSchema>, problem: (path: Path, message: string) => ConfigProblem): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const check = (path: Path, file: string | undefined) => {
    if (file === undefined) return;
    try {
      accessSync(file, constants.R_OK);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read';
      problems.push(problem(path, `${formatPath(path)}: ${file} ${reason}`));
    }
  };
  config.mqtt.listeners.forEach((listener, index) => {
    if (listener.type !== 'tls' && listener.type !== 'wss') return;
    for (const key of ['cert', 'key', 'ca'] as const) check(['mqtt', 'listeners', index, key], listener[key]);
  });
  for (const key of ['ca', 'cert', 'key'] as const) check(['amqp', 'tls', key], config.amqp.tls?.[key]);
  const persistence = config.mqtt.persistence;
  if (persistence.type === 'redis') for (const key of ['ca', 'cert', 'key'] as const) check(['mqtt', 'persistence', 'tls', key], persistence.tls?.[key]);
  return problems;
}

interface ReadYaml<T> {
  data: unknown;
  parsed: T | null;
  problems: ConfigProblem[];
  doc: Document;
  at: (offset: number, path: Path, message: string) => ConfigProblem;
}

/** Parses YAML, substitutes the environment and validates against `schema`, collecting every problem. */
function readYaml<T>(text: string, file: string, schema: z.ZodType<T>, env: Readonly<Record<string, string | undefined>>): ReadYaml<T> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, path: Path, message: string): ConfigProblem => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col, path: formatPath(path), message };
  };

  const syntaxProblems = doc.errors.map((error) => at(error.pos[0], [], error.message.replace(/\s+/g, ' ').trim()));
  if (syntaxProblems.length > 0) throw new ConfigError('BRIDGE_ERR_CONFIG_INVALID', syntaxProblems);

  const unresolved = new Set<YamlNode>();
  const problems = substituteEnvironment(doc, text, env, unresolved, at);

  const data: unknown = doc.toJS() ?? {};
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      // A value whose variable is missing was already reported as such.
      const node = doc.getIn(issue.path.filter((key) => typeof key !== 'symbol'), true);
      if (!(isNode(node) && unresolved.has(node))) problems.push(...issueProblems(issue, doc, data, schema, at));
    }
  }
  return { data, parsed: parsed.success ? parsed.data : null, problems, doc, at };
}

/** A user, and how to report a problem at its username in whichever file gives it (message prefixed with the path). */
interface PlacedUser {
  user: UserSettings;
  problem: (message: string) => ConfigProblem;
}

/** The users of `auth.usersFile` (a YAML file with a `users:` list, as under `auth`); its problems go to `problems`. */
function readUsersFile(file: string, env: Readonly<Record<string, string | undefined>>, problems: ConfigProblem[]): PlacedUser[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    problems.push({ file, line: 1, col: 1, path: '', message: `cannot read the users file: ${reason}` });
    return [];
  }
  try {
    const { parsed, problems: found, doc, at } = readYaml(text, file, usersFileSchema, env);
    problems.push(...found);
    return (parsed?.users ?? []).map((user, index) => {
      const path = ['users', index, 'username'];
      return { user, problem: (message) => at(offsetOf(doc, path), path, `${formatPath(path)}: ${message}`) };
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
    return [];
  }
}

/** Each username given again (in auth.users, the users file, or across both): an error at the repeat, naming the first. */
function duplicateUsers(users: readonly PlacedUser[]): ConfigProblem[] {
  const first = new Map<string, ConfigProblem>();
  const problems: ConfigProblem[] = [];
  for (const { user, problem } of users) {
    const earlier = first.get(user.username);
    if (earlier) problems.push(problem(`user "${user.username}" is defined twice (first at ${earlier.file}:${earlier.line}:${earlier.col})`));
    else first.set(user.username, problem(''));
  }
  return problems;
}

function substituteEnvironment(
  doc: Document,
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  unresolved: Set<YamlNode>,
  at: (offset: number, path: Path, message: string) => ConfigProblem,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const result = substituteEnv(node.value, env);
      for (const problem of result.problems) {
        problems.push(at(sourceOffsetOf(text, node.range, node.value, problem.index), [], problem.message));
        unresolved.add(node);
      }
      node.value = result.value;
    },
  });
  return problems;
}

/**
 * Where the `${` at `index` of a scalar's value is in the file: the same occurrence of the
 * reference in the scalar's source (exact unless YAML escapes changed the text around it).
 */
function sourceOffsetOf(text: string, range: [number, number, number] | null | undefined, value: string, index: number): number {
  if (!range) return 0;
  const close = value.indexOf('}', index);
  const needle = close === -1 ? value.slice(index) : value.slice(index, close + 1);
  let occurrence = 0;
  for (let at = value.indexOf(needle); at !== -1 && at < index; at = value.indexOf(needle, at + 1)) occurrence++;
  let found = text.indexOf(needle, range[0]);
  for (let i = 0; i < occurrence && found !== -1; i++) found = text.indexOf(needle, found + 1);
  return found !== -1 && found < range[1] ? found : range[0];
}

function issueProblems(
  issue: z.core.$ZodIssue,
  doc: Document,
  data: unknown,
  schema: z.ZodType,
  at: (offset: number, path: Path, message: string) => ConfigProblem,
): ConfigProblem[] {
  const path = issue.path.filter((key): key is string | number => typeof key !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const allowed = shapeKeys(objectSchemaAt(schema, path, data) ?? schema);
    return issue.keys.map((key) => {
      const hint = suggest(key, allowed);
      const where = path.length > 0 ? ` in ${formatPath(path)}` : '';
      const message = `unknown key "${key}"${where}${hint ? ` (did you mean "${hint}"?)` : ''}; allowed: ${allowed.join(', ')}`;
      return at(keyOffsetOf(doc, path, key), [...path, key], message);
    });
  }
  if (issue.code === 'invalid_key' && path.length > 0) {
    const key = String(path[path.length - 1]);
    const reason = issue.issues[0]?.message ?? issue.message;
    return [at(keyOffsetOf(doc, path.slice(0, -1), key), path, `${formatPath(path.slice(0, -1))}: key "${key}": ${reason}`)];
  }
  return [at(offsetOf(doc, path), path, `${formatPath(path) || 'configuration'}: ${describeIssue(issue, doc, path)}`)];
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, path: Path): string {
  if (issue.code === 'invalid_type' && !doc.hasIn(path)) return 'is required';
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
    const options = (issue as { options?: unknown[] }).options ?? [];
    return `must be one of ${options.map((option) => JSON.stringify(option)).join(', ')}`;
  }
  if (issue.code === 'too_big' && issue.origin === 'number') return `must be at most ${String(issue.maximum)}`;
  if (issue.code === 'too_small' && issue.origin === 'number') return `must be at least ${String(issue.minimum)}`;
  if (issue.code === 'too_small' && issue.origin === 'string' && Number(issue.minimum) === 1) return 'must not be empty';
  if (issue.code === 'too_small' && issue.origin === 'array') return `needs at least ${String(issue.minimum)} entr${Number(issue.minimum) === 1 ? 'y' : 'ies'}`;
  return issue.message.replace(/^(Invalid input|Invalid option|Too small|Too big|Invalid string): /, '');
}

/**
 * Checks the patterns and templates of every rule that passes the schema on its own, so that
 * template errors are reported together with any other problem in the file.
 */
function checkRules(data: unknown, problem: (path: Path, message: string) => ConfigProblem): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const check = (direction: 'uplink' | 'downlink', compile: (rule: unknown, errors: MappingError[]) => string | null) => {
    const rules = (data as Record<string, unknown> | null)?.[direction];
    if (!Array.isArray(rules)) return;
    rules.forEach((raw, index) => {
      const errors: MappingError[] = [];
      let name: string | null = null;
      try {
        name = compile(raw, errors);
      } catch (error) {
        if (!(error instanceof MappingError)) throw error;
      }
      for (const error of errors) {
        const dot = error.field.indexOf('.');
        const field = dot === -1 ? [error.field] : [error.field.slice(0, dot), error.field.slice(dot + 1)];
        const label = name ?? (raw as { name?: string }).name;
        problems.push(problem([direction, index, ...field], `${direction}[${index}] (${label}): ${error.message}`));
      }
    });
  };
  check('uplink', (raw, errors) => {
    const parsed = uplinkRuleSchema.safeParse(raw);
    if (parsed.success) compileUplinkRule(parsed.data, errors);
    return parsed.success ? parsed.data.name : null;
  });
  check('downlink', (raw, errors) => {
    const parsed = downlinkRuleSchema.safeParse(raw);
    if (parsed.success) compileDownlinkRule(parsed.data, errors);
    return parsed.success ? parsed.data.name : null;
  });
  return problems;
}

/** The offset of the node at `path`, or of its nearest ancestor that exists in the file. */
/** Where a path of the parsed configuration is in the file: `acl` may be written as a list or as `{ rules: [...] }`. */
function writtenPath(doc: Document, path: Path): Path {
  return path[0] === 'acl' && typeof path[1] === 'number' && isMap(doc.getIn(['acl'], true)) ? ['acl', 'rules', ...path.slice(1)] : path;
}

function offsetOf(doc: Document, path: Path): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return isNode(doc.contents) && doc.contents.range ? doc.contents.range[0] : 0;
}

function keyOffsetOf(doc: Document, path: Path, key: string): number {
  const parent = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (isMap(parent)) {
    const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
    const keyNode = pair?.key as YamlNode | undefined;
    if (keyNode?.range) return keyNode.range[0];
  }
  return offsetOf(doc, path);
}

/** `amqp.exchanges[1].durable` as `['amqp', 'exchanges', 1, 'durable']` (formatPath's reverse). */
function parsePath(path: string): Path {
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map(([, key, index]) => (index === undefined ? key! : Number(index)));
}

export function formatPath(path: Path): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${key}` : key;
  return out;
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
