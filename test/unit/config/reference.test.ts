import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderConfigurationReference } from '../../../src/config/reference.js';

test('configuration reference - docs/configuration.md is what the schema generates (run `npm run docs`)', () => {
  const onDisk = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(onDisk, renderConfigurationReference());
});

test('configuration reference - a field of each kind appears with its type and default', () => {
  const doc = renderConfigurationReference();
  assert.match(doc, /\| `amqp\.maxUnconfirmed` \| integer, 1 to 65,535 \| `1024` \|/);
  assert.match(doc, /\| `amqp\.publishTimeoutMs` \| integer, at least 1 \| `10000` \|/);
  assert.match(doc, /\| `uplink\[\]\.routingKey` \| string \| \(none\) \| AMQP 0-9-1: template for the routing key; default `\{topic\}`/);
  assert.match(doc, /\| `amqp\.protocol` \| `0-9-1` \\\| `1\.0` \| `"0-9-1"` \|/);
  assert.match(doc, /\| `downlink\[\]\.prefetch` \| integer, 1 to 65,535 \| `100` \|/);
  assert.match(doc, /\| `mqtt\.listeners\[\]\.path \(type: ws\)` \| string \| `"\/mqtt"` \|/);
});
