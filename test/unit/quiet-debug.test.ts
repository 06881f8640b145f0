import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

/**
 * In a fresh node, loads the bridge first (as the entry points do), then mqtt-packet, and parses
 * one PUBLISH; prints what was parsed and whether mqtt-packet's parser logger is on.
 */
function parseOnePublishAfterBridge(debug: string | undefined): { parsed: unknown; stderr: string } {
  const source = `
await import('./src/bridge.ts');
const { createRequire } = await import('node:module');
const require = createRequire(import.meta.url);
const mqttPacket = require('mqtt-packet');
const parser = mqttPacket.parser();
let parsed = null;
parser.on('packet', (packet) => { parsed = packet; });
parser.parse(mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hi'), qos: 1, messageId: 7 }));
const debugOfMqttPacket = createRequire(require.resolve('mqtt-packet'))('debug');
process.stdout.write(JSON.stringify({ topic: parsed.topic, payload: parsed.payload.toString(), messageId: parsed.messageId, enabled: debugOfMqttPacket('mqtt-packet:parser').enabled, quiet: debugOfMqttPacket[Symbol.for('mqtt-amqp-bridge.quiet-debug')] === true }));
`;
  const env = { ...process.env };
  delete env.DEBUG;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], {
    env: { ...env, ...(debug === undefined ? {} : { DEBUG: debug }), DEBUG_COLORS: 'no' },
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return { parsed: JSON.parse(result.stdout), stderr: result.stderr };
}

test('quiet debug - with DEBUG unset, the loggers mqtt-packet gets are off, it logs nothing and parses as before', () => {
  const { parsed, stderr } = parseOnePublishAfterBridge(undefined);
  assert.deepEqual(parsed, { topic: 'a/b', payload: 'hi', messageId: 7, enabled: false, quiet: true });
  assert.equal(stderr, '');
});

test('quiet debug - DEBUG set at start still turns mqtt-packet logging on', () => {
  const { parsed, stderr } = parseOnePublishAfterBridge('mqtt-packet:parser');
  assert.deepEqual(parsed, { topic: 'a/b', payload: 'hi', messageId: 7, enabled: true, quiet: true });
  assert.match(stderr, /mqtt-packet:parser parse: current state/);
});

test('quiet debug - every entry point loads it before anything else', () => {
  for (const [file, line] of [
    ['src/cli/bin.ts', "import '../quiet-debug.js';"],
    ['src/index.ts', "import './quiet-debug.js';"],
    ['src/bridge.ts', "import './quiet-debug.js';"],
  ] as const) {
    const firstImport = readFileSync(file, 'utf8').split('\n').find((text) => text.startsWith('import '));
    assert.ok(firstImport?.startsWith(line), `${file} imports quiet-debug first (found: ${firstImport})`);
  }
});
