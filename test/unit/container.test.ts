import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { BRIDGE_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { loadConfigFile } from '../../src/config/load.js';
import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, downlinkQueueName, type BridgeConfig } from '../../src/config/schema.js';
import { runCli } from '../helpers/cli.js';

/*
 * Keeps the container files (Dockerfile, .dockerignore, compose.yaml, config/haproxy.cfg) in step
 * with the code: package.json's bin, the build output, config/bridge.yaml's and
 * config/examples/fleet.yaml's listeners, and the configs' env vars.
 * No Docker engine is needed: the files are parsed, never built or run.
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
const CONFIG_FILE = 'config/bridge.yaml';
const configPath = join(root, CONFIG_FILE);

// ---- Dockerfile ----

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string | undefined;
  base: string;
  instructions: Instruction[];
}

/** Instructions grouped by stage; comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let buffer = '';
  let startLine = 0;
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    // Docker drops comment and empty lines, also inside a continuation.
    if (trimmed === '' || trimmed.startsWith('#')) return;
    if (buffer === '') startLine = index + 1;
    if (trimmed.endsWith('\\')) {
      buffer += `${trimmed.slice(0, -1).trim()} `;
      return;
    }
    buffer += trimmed;
    const match = /^(\S+)\s*([\s\S]*)$/.exec(buffer);
    assert.ok(match, `Dockerfile:${startLine}: cannot parse "${buffer}"`);
    instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim(), line: startLine });
    buffer = '';
  });
  assert.equal(buffer, '', 'the Dockerfile ends inside a line continuation');

  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(/\s+/).filter((word) => !word.startsWith('--'));
      const asIndex = words.findIndex((word) => word.toUpperCase() === 'AS');
      stages.push({ base: words[0] ?? '', name: asIndex === -1 ? undefined : words[asIndex + 1], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    assert.ok(stage, `Dockerfile:${instruction.line}: ${instruction.keyword} before the first FROM`);
    stage.instructions.push(instruction);
  }
  return stages;
}

function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword);
}

function last(stage: Stage, keyword: string): Instruction {
  const found = all(stage, keyword).at(-1);
  assert.ok(found, `the ${stage.name ?? 'last'} stage has no ${keyword}`);
  return found;
}

/** The JSON (exec) form of ENTRYPOINT/CMD/HEALTHCHECK CMD; the shell form is refused. */
function execForm(args: string, what: string): string[] {
  assert.ok(args.startsWith('['), `${what} must use the exec form ["…", …], got: ${args}`);
  const value: unknown = JSON.parse(args);
  assert.ok(Array.isArray(value) && value.every((item) => typeof item === 'string'), `${what} must be a JSON array of strings`);
  return value;
}

/** `WORKDIR` of a stage (absolute, as the files below rely on). */
function workdirOf(stage: Stage): string {
  const workdir = last(stage, 'WORKDIR').args;
  assert.ok(posix.isAbsolute(workdir), `WORKDIR should be absolute, got ${workdir}`);
  return posix.normalize(workdir);
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

function copiesOf(stage: Stage): Copy[] {
  return all(stage, 'COPY').map(({ args }) => {
    const words = args.split(/\s+/);
    const flags = words.filter((word) => word.startsWith('--'));
    const paths = words.filter((word) => !word.startsWith('--'));
    const from = flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length);
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' };
  });
}

function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const { args } of all(stage, 'ENV')) {
    const pairs = [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)];
    for (const [, key, value] of pairs) env.set(key ?? '', (value ?? '').replace(/^"(.*)"$/, '$1'));
  }
  return env;
}

/** The paths of the stage's VOLUME instructions, JSON or plain form. */
function volumesOf(stage: Stage): string[] {
  return all(stage, 'VOLUME').flatMap(({ args }) => (args.startsWith('[') ? execForm(args, 'VOLUME') : args.split(/\s+/)));
}

function healthcheckCommand(stage: Stage): string[] {
  const args = last(stage, 'HEALTHCHECK').args;
  const match = /^((?:--\S+\s+)*)CMD\s+([\s\S]+)$/.exec(args);
  assert.ok(match, `HEALTHCHECK should be "[--options] CMD [...]", got: ${args}`);
  return execForm(match[2] ?? '', 'HEALTHCHECK CMD');
}

// ---- .dockerignore (the subset of Docker's rules these files use) ----

function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] ?? '';
    if (char === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Whether a context path is left out of the build context: it or a parent matches, the last matching line wins. */
function isDockerignored(path: string, ignoreText: string): boolean {
  const rules = ignoreText
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const pattern = posix.normalize((negated ? line.slice(1) : line).trim()).replace(/^\/+|\/+$/g, '');
      return { negated, pattern: globToRegExp(pattern) };
    });
  const segments = posix.normalize(path).replace(/^\.\/|\/$/g, '').split('/');
  let ignored = false;
  for (const rule of rules) {
    for (let depth = 1; depth <= segments.length; depth++) {
      if (rule.pattern.test(segments.slice(0, depth).join('/'))) {
        ignored = !rule.negated;
        break;
      }
    }
  }
  return ignored;
}

// ---- compose.yaml ----

type Yaml = Record<string, unknown>;

function isRecord(value: unknown): value is Yaml {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(object: unknown, key: string, where: string): unknown {
  assert.ok(isRecord(object), `${where} should be a mapping`);
  assert.ok(key in object, `${where} has no "${key}"`);
  return object[key];
}

function service(compose: unknown, name: string): Yaml {
  const value = field(field(compose, 'services', 'compose.yaml'), name, 'services');
  assert.ok(isRecord(value), `services.${name} should be a mapping`);
  return value;
}

/** Container-side ports of a `ports:` list, short ("[ip:]host:container[/proto]") or long ({ target }) syntax. */
function containerPorts(ports: unknown): number[] {
  assert.ok(Array.isArray(ports), '`ports` should be a list');
  return ports.map((entry: unknown) => {
    if (isRecord(entry)) return Number(entry.target);
    const spec = String(entry).replace(/\/(tcp|udp)$/, '');
    return Number(spec.split(':').at(-1));
  });
}

/** `environment:` as a map, from either the map or the "KEY=VALUE" list syntax. */
function environmentOf(svc: Yaml): Record<string, string> {
  const environment = svc.environment;
  const out: Record<string, string> = {};
  if (Array.isArray(environment)) {
    for (const item of environment) {
      const text = String(item);
      const eq = text.indexOf('=');
      if (eq !== -1) out[text.slice(0, eq)] = text.slice(eq + 1);
    }
  } else if (isRecord(environment)) {
    for (const [key, value] of Object.entries(environment)) if (value !== null && value !== undefined) out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  } else {
    assert.fail('the service has no `environment`');
  }
  return out;
}

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

function mountsOf(svc: Yaml): Mount[] {
  const volumes = svc.volumes;
  assert.ok(Array.isArray(volumes), 'the service has no `volumes` list');
  return volumes.map((entry: unknown) => {
    if (isRecord(entry)) return { source: String(entry.source), target: String(entry.target), readOnly: entry.read_only === true };
    const [source = '', target = '', mode = ''] = String(entry).split(':');
    return { source, target, readOnly: mode.split(',').includes('ro') };
  });
}

/** A compose duration ("15s", "1m30s", "500ms") in milliseconds. */
function durationMs(value: unknown): number {
  const text = String(value);
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g)];
  assert.ok(parts.length > 0 && parts.map((part) => part[0]).join('') === text, `not a duration: ${text}`);
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * (units[unit ?? ''] ?? Number.NaN), 0);
}

// ---- the files ----

const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
const stages = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const runtime = stages.at(-1) as Stage;
const dockerignore = readFileSync(join(root, '.dockerignore'), 'utf8');
const compose: unknown = parseYaml(readFileSync(join(root, 'compose.yaml'), 'utf8'));
const defaults: BridgeConfig = loadConfigFile(configPath, { env: {} });

function listenerPort(config: BridgeConfig, type: 'tcp' | 'ws'): number {
  const found = config.mqtt.listeners.filter((listener) => listener.type === type);
  assert.equal(found.length, 1, `${CONFIG_FILE} should have exactly one ${type} listener`);
  return (found[0] as { port: number }).port;
}

const sortedPorts = (ports: readonly number[]) => [...ports].sort((a, b) => a - b);
const defaultListenerPorts = sortedPorts(defaults.mqtt.listeners.map((listener) => listener.port));

// ---- tests ----

test('config/bridge.yaml - loaded with an empty env, it listens on the documented default ports', () => {
  assert.deepEqual(defaultListenerPorts, [1883, 8083]);
  assert.equal(listenerPort(defaults, 'tcp'), 1883);
  assert.equal(listenerPort(defaults, 'ws'), 8083);
});

test('Dockerfile - has a build stage and a runtime stage on the same Node 20 base', () => {
  assert.equal(stages.length, 2);
  for (const stage of stages) assert.match(stage.base, /^node:20-(bookworm-slim|alpine)$/);
  assert.equal(stages[0]?.base, runtime.base);
});

test('Dockerfile - ENTRYPOINT runs the package.json bin with node and the flags the bridge ships with', () => {
  const entrypoint = execForm(last(runtime, 'ENTRYPOINT').args, 'ENTRYPOINT');
  const bin = packageJson.bin['mqtt-amqp-bridge'];
  assert.equal(bin, 'dist/cli/bin.js');
  assert.deepEqual(entrypoint, ['node', ...BRIDGE_NODE_FLAGS, bin]);
});

test('node flags - npm start and npm run bridge run node with the same flags as the image; the bin keeps a shebang every env reads', () => {
  assert.ok(BRIDGE_NODE_FLAGS.length > 0);
  for (const script of ['start', 'bridge'] as const) {
    const command = packageJson.scripts[script] ?? '';
    assert.ok(command.startsWith(`node ${BRIDGE_NODE_FLAGS.join(' ')} `), `npm run ${script}: ${command}`);
  }
  const shebang = readFileSync(join(root, 'src/cli/bin.ts'), 'utf8').split('\n')[0];
  assert.equal(shebang, '#!/usr/bin/env node', 'env -S is not in BusyBox (Alpine), OpenBSD or NetBSD');
});

test('Dockerfile - the build stage compiles the bin script that the runtime stage copies in', () => {
  const build = stages[0] as Stage;
  const buildConfig = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
  const { outDir, rootDir } = buildConfig.compilerOptions;
  assert.equal(packageJson.scripts.build, 'tsc -p tsconfig.build.json');
  assert.ok(all(build, 'RUN').some(({ args }) => /^npm ci(\s|$)/.test(args) && !args.includes('--omit')), 'the build stage runs a full `npm ci`');
  assert.ok(all(build, 'RUN').some(({ args }) => /\bnpm run build\b/.test(args)), 'the build stage runs `npm run build`');

  // The bin is dist/cli/bin.js, compiled from src/cli/bin.ts.
  const bin = packageJson.bin['mqtt-amqp-bridge'] ?? '';
  const relative = posix.relative(outDir, bin);
  assert.ok(!relative.startsWith('..'), `the bin ${bin} should be inside the build's outDir ${outDir}`);
  assert.ok(existsSync(join(root, rootDir, relative.replace(/\.js$/, '.ts'))), `${rootDir}/${relative} (.ts) should exist`);

  // The runtime stage copies exactly that outDir from the build stage into its WORKDIR.
  const fromBuild = copiesOf(runtime).filter((copy) => copy.from === build.name);
  assert.deepEqual(
    fromBuild.map((copy) => ({ sources: copy.sources, dest: posix.resolve(workdirOf(runtime), copy.dest) })),
    [{ sources: [posix.join(workdirOf(build), outDir)], dest: posix.join(workdirOf(runtime), outDir) }],
  );
});

test('Dockerfile - CMD runs `run --config config/bridge.yaml`, a file that exists and is copied in', () => {
  const cmd = execForm(last(runtime, 'CMD').args, 'CMD');
  assert.deepEqual(cmd, ['run', '--config', CONFIG_FILE]);
  assert.ok(statSync(configPath).isFile(), `${CONFIG_FILE} should exist`);

  // Resolved against WORKDIR, the config file is under a COPY from the build context of its folder.
  const inImage = posix.resolve(workdirOf(runtime), CONFIG_FILE);
  const copied = copiesOf(runtime).some(
    (copy) =>
      copy.from === undefined &&
      copy.sources.some((source) => posix.join(posix.resolve(workdirOf(runtime), copy.dest), posix.relative(source, CONFIG_FILE)) === inImage),
  );
  assert.ok(copied, `the runtime stage should COPY ${CONFIG_FILE} to ${inImage}`);
});

test('Dockerfile - EXPOSEs exactly the listener ports and the HTTP port of config/bridge.yaml', () => {
  const exposed = all(runtime, 'EXPOSE').flatMap(({ args }) => args.split(/\s+/).map((port) => Number(port.replace(/\/tcp$/, ''))));
  assert.deepEqual(sortedPorts(exposed), sortedPorts([...defaultListenerPorts, defaults.http.port]));
});

test('Dockerfile - the runtime stage runs as the non-root node user with production dependencies only', () => {
  assert.equal(last(runtime, 'USER').args, 'node');
  assert.equal(envOf(runtime).get('NODE_ENV'), 'production');
  const installs = all(runtime, 'RUN').filter(({ args }) => /\bnpm (ci|install|i)\b/.test(args));
  assert.equal(installs.length, 1, 'the runtime stage installs once');
  assert.match(installs[0]?.args ?? '', /\bnpm ci\b[^&;|]*\s--omit=dev\b/);
});

test('Dockerfile - the HEALTHCHECK asks /readyz on the HTTP port of config/bridge.yaml', () => {
  const command = healthcheckCommand(runtime);
  assert.equal(command[0], 'node');
  const script = command.at(-1) ?? '';
  const url = /fetch\('http:\/\/127\.0\.0\.1:(\d+)(\/[a-z]+)'\)/.exec(script);
  assert.ok(url, 'the healthcheck should fetch the readiness endpoint');
  assert.equal(Number(url[1]), defaults.http.port);
  assert.equal(url[2], '/readyz');
  assert.match(script, /process\.exit\(r\.ok\?0:1\)/, 'healthy only on a 2xx answer');
});

test('.dockerignore - keeps host builds out and lets in every file the Dockerfile copies', () => {
  for (const path of ['node_modules', 'node_modules/yaml/package.json', 'dist', 'dist/cli/bin.js', '.git']) {
    assert.equal(isDockerignored(path, dockerignore), true, `${path} should be ignored`);
  }
  const sources = stages.flatMap((stage) => copiesOf(stage).filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources));
  assert.ok(sources.length > 0);
  for (const source of sources) {
    assert.ok(existsSync(join(root, source)), `COPY source ${source} should exist`);
    assert.equal(isDockerignored(source, dockerignore), false, `COPY source ${source} must not be dockerignored`);
  }
  assert.equal(isDockerignored(CONFIG_FILE, dockerignore), false);
});

test('compose.yaml - bridge publishes exactly the listener ports and the HTTP port of config/bridge.yaml', () => {
  const bridge = service(compose, 'bridge');
  assert.equal(bridge.build, '.');
  assert.deepEqual(sortedPorts(containerPorts(bridge.ports)), sortedPorts([...defaultListenerPorts, defaults.http.port]));
});

test('compose.yaml - the optional prometheus service scrapes the bridge on its HTTP port', () => {
  const prometheus = service(compose, 'prometheus') as { profiles?: string[]; volumes?: string[] };
  assert.deepEqual(prometheus.profiles, ['monitoring']);
  const mount = (prometheus.volumes ?? []).find((volume) => volume.endsWith(':/etc/prometheus/prometheus.yml:ro'));
  assert.ok(mount, 'prometheus mounts its configuration');
  const scrape = parseYaml(readFileSync(join(root, mount.split(':')[0]!), 'utf8')) as { scrape_configs: Array<{ metrics_path: string; static_configs: Array<{ targets: string[] }> }> };
  assert.equal(scrape.scrape_configs[0]!.metrics_path, '/metrics');
  assert.deepEqual(scrape.scrape_configs[0]!.static_configs[0]!.targets, [`bridge:${defaults.http.port}`]);
});

test('compose.yaml - bridge sets MQTT_PORT and MQTT_WS_PORT to the tcp and ws listener ports', () => {
  const env = environmentOf(service(compose, 'bridge'));
  assert.equal(env.MQTT_PORT, String(listenerPort(defaults, 'tcp')));
  assert.equal(env.MQTT_WS_PORT, String(listenerPort(defaults, 'ws')));

  // Loaded with that environment, the config listens on what compose publishes and connects where it says.
  const inCompose = loadConfigFile(configPath, { env });
  assert.deepEqual(
    sortedPorts([...inCompose.mqtt.listeners.map((listener) => listener.port), inCompose.http.port]),
    sortedPorts(containerPorts(service(compose, 'bridge').ports)),
  );
  assert.equal(inCompose.amqp.url, env.AMQP_URL);
});

test('compose.yaml - bridge mounts config/bridge.yaml read-only where the image CMD reads it', () => {
  const mounts = mountsOf(service(compose, 'bridge'));
  const [, flag, configArgument] = execForm(last(runtime, 'CMD').args, 'CMD');
  assert.equal(flag, '--config');
  const target = posix.resolve(workdirOf(runtime), configArgument!);
  const mount = mounts.find((candidate) => candidate.target === target);
  assert.ok(mount, `a mount should target ${target}; got ${mounts.map((m) => m.target).join(', ')}`);
  assert.equal(mount.readOnly, true);
  assert.equal(join(root, mount.source), configPath);
});

test('compose.yaml - bridge waits for a healthy rabbitmq and reaches it by its service name', () => {
  const bridge = service(compose, 'bridge');
  assert.deepEqual(field(bridge, 'depends_on', 'services.bridge'), { rabbitmq: { condition: 'service_healthy' } });
  const url = new URL(environmentOf(bridge).AMQP_URL ?? '');
  assert.equal(url.protocol, 'amqp:');
  assert.equal(url.hostname, 'rabbitmq');
  assert.equal(url.port, '5672');
  assert.ok(containerPorts(service(compose, 'rabbitmq').ports).includes(Number(url.port)));
  assert.equal(bridge.restart, 'unless-stopped');
});

test('compose.yaml - rabbitmq has a healthcheck and bridge relies on the Dockerfile one', () => {
  const rabbitmq = service(compose, 'rabbitmq');
  assert.equal(rabbitmq.image, 'rabbitmq:3-management');
  assert.deepEqual(field(field(rabbitmq, 'healthcheck', 'services.rabbitmq'), 'test', 'rabbitmq healthcheck'), [
    'CMD',
    'rabbitmq-diagnostics',
    '-q',
    'ping',
  ]);
  // No healthcheck of its own: compose runs the image's HEALTHCHECK, so the two cannot drift apart.
  assert.equal('healthcheck' in service(compose, 'bridge'), false, 'services.bridge should not override the image HEALTHCHECK');
  assert.deepEqual(healthcheckCommand(runtime).slice(0, 2), ['node', '-e']);
});

const DATA_DIR = '/app/data';

test('Dockerfile - /app/data, where the bridge may write (mqtt.sessionFile), is a VOLUME the node user owns', () => {
  // Everything else under WORKDIR stays root's, so this is the one place a session file can be saved.
  assert.equal(posix.dirname(DATA_DIR), workdirOf(runtime));
  assert.deepEqual(volumesOf(runtime), [DATA_DIR]);
  const runs = all(runtime, 'RUN');
  const creates = runs.find(({ args }) => new RegExp(`\\bmkdir\\b[^&;|]*\\s${DATA_DIR}(\\s|$)`).test(args));
  assert.ok(creates, `a RUN creates ${DATA_DIR}`);
  assert.match(creates.args, new RegExp(`\\bchown\\s+(-R\\s+)?node(:node)?\\s+${DATA_DIR}(\\s|$)`), `${DATA_DIR} is chowned to node`);
  const volume = all(runtime, 'VOLUME')[0]!;
  const user = last(runtime, 'USER');
  assert.ok(creates.line < volume.line, 'created and chowned before the VOLUME (later changes to a volume path are discarded)');
  assert.ok(creates.line < user.line, 'as root, before USER node');
});

test('compose.yaml - bridge mounts a named, writable volume on the image data directory', () => {
  const mount = mountsOf(service(compose, 'bridge')).find((candidate) => candidate.target === DATA_DIR);
  assert.ok(mount, `a mount should target ${DATA_DIR}`);
  assert.equal(mount.readOnly, false);
  assert.match(mount.source, /^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a named volume, not a host folder (whose owner would not be node)');
  assert.ok(isRecord(field(compose, 'volumes', 'compose.yaml')) && mount.source in (field(compose, 'volumes', 'compose.yaml') as Yaml), `volume ${mount.source} is declared under volumes:`);
  assert.ok(volumesOf(runtime).includes(mount.target));
});

test('compose.yaml - bridge gets longer than shutdownTimeoutMs to stop gracefully', () => {
  const grace = durationMs(field(service(compose, 'bridge'), 'stop_grace_period', 'services.bridge'));
  assert.ok(grace > defaults.shutdownTimeoutMs, `stop_grace_period ${grace} ms should exceed shutdownTimeoutMs ${defaults.shutdownTimeoutMs} ms`);
});

// ---- the fleet (profile "fleet"): Redis, bridge replicas, HAProxy ----

const FLEET_CONFIG = 'config/examples/fleet.yaml';
const HAPROXY_CONFIG = 'config/haproxy.cfg';

interface HaproxySection {
  kind: string;
  name: string;
  lines: string[];
}

/** HAProxy's configuration as sections (`frontend mqtt`, `backend x`, ...) of lines, comments dropped. */
function parseHaproxy(text: string): HaproxySection[] {
  const sections: HaproxySection[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\s+#.*$|^#.*$/, '').trim();
    if (line === '') continue;
    if (/^\S/.test(raw)) {
      const [kind = '', name = ''] = line.split(/\s+/);
      sections.push({ kind, name, lines: [] });
    } else {
      const section = sections.at(-1);
      assert.ok(section, `${HAPROXY_CONFIG}: "${line}" before the first section`);
      section.lines.push(line);
    }
  }
  return sections;
}

function section(sections: HaproxySection[], kind: string, name?: string): HaproxySection {
  const found = sections.find((candidate) => candidate.kind === kind && (name === undefined || candidate.name === name));
  assert.ok(found, `${HAPROXY_CONFIG} has no ${kind} ${name ?? ''}`);
  return found;
}

/** The value of a setting (`default_backend x` -> `x`) in a section, or undefined. */
function setting(part: HaproxySection, keyword: string): string | undefined {
  return part.lines.find((line) => line.startsWith(`${keyword} `))?.slice(keyword.length + 1);
}

const haproxy = parseHaproxy(readFileSync(join(root, HAPROXY_CONFIG), 'utf8'));
const fleetEnv = () => environmentOf(service(compose, 'fleet-bridge'));
const fleetConfig = () => loadConfigFile(join(root, FLEET_CONFIG), { env: fleetEnv() });

test('compose.yaml - the single bridge stays the default; Redis, the replicas and the load balancer are the profile "fleet"', () => {
  for (const name of ['rabbitmq', 'bridge']) assert.equal('profiles' in service(compose, name), false, `${name} runs by default`);
  for (const name of ['redis', 'fleet-bridge', 'mqtt-lb']) assert.deepEqual(service(compose, name).profiles, ['fleet'], name);
});

test('compose.yaml - redis keeps its data in an append-only file, fsynced every second, on a named volume', () => {
  const redis = service(compose, 'redis');
  assert.match(String(redis.image), /^redis:7(-alpine)?$/);
  const command = field(redis, 'command', 'services.redis') as string[];
  assert.equal(command[0], 'redis-server');
  const option = (name: string) => command[command.indexOf(`--${name}`) + 1];
  assert.equal(option('appendonly'), 'yes');
  assert.equal(option('appendfsync'), 'everysec');
  const data = mountsOf(redis).find((mount) => mount.target === '/data');
  assert.ok(data && !data.readOnly, 'a writable mount on /data, where redis-server writes its AOF');
  assert.ok(data.source in (field(compose, 'volumes', 'compose.yaml') as Yaml), `volume ${data.source} is declared`);
  assert.deepEqual((field(redis, 'healthcheck', 'services.redis') as Yaml).test, ['CMD', 'redis-cli', 'ping']);
});

test('compose.yaml - fleet-bridge: two replicas of the image, its entrypoint, on config/examples/fleet.yaml mounted where the command reads it', () => {
  const fleet = service(compose, 'fleet-bridge');
  assert.equal(fleet.build, '.', 'the same image as the bridge');
  assert.equal('entrypoint' in fleet, false, "the image's ENTRYPOINT (node dist/cli/bin.js)");
  assert.equal((field(fleet, 'deploy', 'services.fleet-bridge') as { replicas: number }).replicas, 2);
  const command = field(fleet, 'command', 'services.fleet-bridge') as string[];
  assert.deepEqual(command, ['run', '--config', FLEET_CONFIG]);
  const target = posix.resolve(workdirOf(runtime), FLEET_CONFIG);
  const mount = mountsOf(fleet).find((candidate) => candidate.target === target);
  assert.ok(mount && mount.readOnly, `${FLEET_CONFIG} mounted read-only on ${target}`);
  assert.equal(join(root, mount.source), join(root, FLEET_CONFIG));
  assert.equal('ports' in fleet, false, 'no published ports: devices come through the load balancer');
  const grace = durationMs(field(fleet, 'stop_grace_period', 'services.fleet-bridge'));
  assert.ok(grace > fleetConfig().shutdownTimeoutMs);
});

test('compose.yaml - fleet-bridge gets the Redis URL (persistence redis) and the AMQP URL, both by service name, and waits for both to be healthy', () => {
  const env = fleetEnv();
  const config = fleetConfig();
  assert.equal(config.mqtt.persistence.type, 'redis');
  assert.equal(config.mqtt.persistence.type === 'redis' ? config.mqtt.persistence.url : '', env.REDIS_URL);
  const redisUrl = new URL(env.REDIS_URL ?? '');
  assert.deepEqual([redisUrl.protocol, redisUrl.hostname, redisUrl.port || '6379'], ['redis:', 'redis', '6379']);
  assert.equal(config.amqp.url, env.AMQP_URL);
  assert.equal(new URL(config.amqp.url).hostname, 'rabbitmq');
  assert.deepEqual(field(service(compose, 'fleet-bridge'), 'depends_on', 'services.fleet-bridge'), {
    rabbitmq: { condition: 'service_healthy' },
    redis: { condition: 'service_healthy' },
  });
  // The same ports as the image: what the Dockerfile EXPOSEs and its HEALTHCHECK asks.
  const exposed = all(runtime, 'EXPOSE').flatMap(({ args }) => args.split(/\s+/).map(Number));
  for (const port of [...config.mqtt.listeners.map((listener) => listener.port), config.http.port]) assert.ok(exposed.includes(port), `port ${port} is EXPOSEd`);
  assert.equal(config.http.port, defaults.http.port);
});

test('config/examples/fleet.yaml - valid (also --strict), with the compose environment and with none', async () => {
  for (const env of [fleetEnv(), {}]) {
    assert.deepEqual(await runCli(['validate', '--strict', FLEET_CONFIG], env), { code: 0, stdout: 'ok\n', stderr: '' });
  }
  // Its downlink queue is its own: the fleet never competes with the single bridge for commands.
  const queues = (config: BridgeConfig) => config.downlink.map((rule) => downlinkQueueName(rule));
  assert.equal(queues(fleetConfig()).filter((queue) => queues(defaults).includes(queue)).length, 0);
});

test('config/haproxy.cfg - a TCP frontend on each listener port of the replicas, to a backend of exactly the replicas on that port', () => {
  const config = fleetConfig();
  const replicas = (field(service(compose, 'fleet-bridge'), 'deploy', 'services.fleet-bridge') as { replicas: number }).replicas;
  assert.equal(setting(section(haproxy, 'defaults'), 'mode'), 'tcp');
  const tcpFrontends = haproxy.filter((part) => part.kind === 'frontend' && (setting(part, 'mode') ?? 'tcp') === 'tcp');
  const listenerPorts = config.mqtt.listeners.map((listener) => listener.port);
  assert.deepEqual(sortedPorts(tcpFrontends.map((frontend) => Number(setting(frontend, 'bind')?.replace(/^.*:/, '')))), sortedPorts(listenerPorts));
  for (const frontend of tcpFrontends) {
    const port = Number(setting(frontend, 'bind')?.replace(/^.*:/, ''));
    const backend = section(haproxy, 'backend', setting(frontend, 'default_backend'));
    const template = /^(\S+) (\d+) ([^:\s]+):(\d+)$/.exec(setting(backend, 'server-template') ?? '');
    assert.ok(template, `${backend.name}: server-template NAME COUNT HOST:PORT`);
    assert.equal(Number(template[2]), replicas, `${backend.name}: one server per replica`);
    assert.equal(template[3], 'fleet-bridge', `${backend.name}: the replicas' service name`);
    assert.equal(Number(template[4]), port, `${backend.name}: the port the frontend takes`);
    assert.equal(backend.lines.filter((line) => line.startsWith('server ')).length, 0, 'no other servers');
  }
});

test("config/haproxy.cfg - a replica gets connections only while /readyz on its HTTP port answers 200; its addresses from Docker's DNS", () => {
  const config = fleetConfig();
  const defaultServer = setting(section(haproxy, 'defaults'), 'default-server') ?? '';
  assert.match(defaultServer, new RegExp(`\\bcheck port ${config.http.port}\\b`));
  assert.match(defaultServer, /\bresolvers docker\b/);
  assert.match(defaultServer, /\binit-addr none\b/, 'starts before the replicas resolve');
  assert.equal(setting(section(haproxy, 'resolvers', 'docker'), 'nameserver'), 'dns 127.0.0.11:53');
  for (const backend of haproxy.filter((part) => part.kind === 'backend')) {
    assert.ok(backend.lines.includes('option httpchk'), backend.name);
    assert.equal(setting(backend, 'http-check send'), 'meth GET uri /readyz', backend.name);
    assert.equal(setting(backend, 'http-check expect'), 'status 200', backend.name);
  }
});

test('config/haproxy.cfg - the per-address connection limit the replicas cannot apply behind it is applied by it, as the bridge would', () => {
  const config = fleetConfig();
  assert.equal(config.mqtt.maxConnectionsPerAddress, 0, 'the replicas see only the balancer');
  assert.equal(config.mqtt.maxBufferedBytesPerAddress, 0);
  for (const frontend of haproxy.filter((part) => part.kind === 'frontend' && (setting(part, 'mode') ?? 'tcp') === 'tcp')) {
    assert.ok(frontend.lines.some((line) => /^tcp-request connection track-sc0 src\b/.test(line)), frontend.name);
    assert.ok(frontend.lines.includes(`tcp-request connection reject if { sc0_conn_cur gt ${DEFAULT_MAX_CONNECTIONS_PER_ADDRESS} }`), frontend.name);
  }
});

test('compose.yaml - mqtt-lb runs HAProxy on config/haproxy.cfg (read-only) and publishes exactly its frontends', () => {
  const lb = service(compose, 'mqtt-lb');
  assert.match(String(lb.image), /^haproxy:\d+\.\d+(-alpine)?$/);
  const mount = mountsOf(lb).find((candidate) => candidate.target === '/usr/local/etc/haproxy/haproxy.cfg');
  assert.ok(mount && mount.readOnly, "the file where the haproxy image reads its configuration");
  assert.equal(join(root, mount.source), join(root, HAPROXY_CONFIG));
  const binds = haproxy.filter((part) => part.kind === 'frontend').map((frontend) => Number(setting(frontend, 'bind')?.replace(/^.*:/, '')));
  assert.deepEqual(sortedPorts(containerPorts(lb.ports)), sortedPorts(binds));
  // Beside the single bridge: other host ports for the fleet.
  const hostPorts = (svc: Yaml) => (svc.ports as string[]).map((entry) => String(entry).split(':').at(-2));
  assert.equal(hostPorts(lb).filter((port) => hostPorts(service(compose, 'bridge')).includes(port)).length, 0);
  assert.deepEqual(field(lb, 'depends_on', 'services.mqtt-lb'), { 'fleet-bridge': { condition: 'service_started' } });
});

test('config/prometheus.yml - the fleet job scrapes every replica (each address of fleet-bridge) on its HTTP port', () => {
  const scrape = parseYaml(readFileSync(join(root, 'config/prometheus.yml'), 'utf8')) as { scrape_configs: Array<{ job_name: string; metrics_path: string; dns_sd_configs?: Array<{ names: string[]; type: string; port: number }> }> };
  const fleet = scrape.scrape_configs.find((job) => job.dns_sd_configs);
  assert.ok(fleet);
  assert.equal(fleet.metrics_path, '/metrics');
  assert.deepEqual(fleet.dns_sd_configs, [{ names: ['fleet-bridge'], type: 'A', port: fleetConfig().http.port }]);
});
