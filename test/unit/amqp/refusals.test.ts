import assert from 'node:assert/strict';
import { test } from 'node:test';
import { downlinkRefusal, refusalMessage, Refusals, type Refusal } from '../../../src/amqp/refusals.js';
import { captureLogs } from '../../helpers/log-capture.js';

const DURABLE = "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'telemetry' in vhost '/': received 'true' but current is 'false'";

const durableClash: Refusal = {
  resource: { kind: 'exchange', name: 'telemetry' },
  error: { kind: 'configuration', code: 406, text: DURABLE },
  operation: 'declare',
  entry: 'amqp.exchanges[1]',
  held: ['uplink rule telemetry'],
};

const locate = (path: string) => `bridge.yaml:${path.endsWith('durable') ? '9:7' : '8:7'}`;

function registry(withLocator = true) {
  const { logger, lines } = captureLogs();
  return { refusals: new Refusals({ logger, retryMs: 120_000, locate: () => (withLocator ? locate : null) }), lines };
}

test('Refusals - a refusal is logged once at error level with what to change; again only when RabbitMQ answers otherwise', () => {
  const { refusals, lines } = registry();
  refusals.refuse('exchange:telemetry', durableClash);
  refusals.refuse('exchange:telemetry', { ...durableClash, entry: 'amqp.exchanges[2]' }); // the same answer after a reload
  assert.equal(lines.length, 1);
  const [line] = lines as [Record<string, unknown>];
  assert.equal(line.level, 50);
  assert.deepEqual(
    { code: line.code, exchange: line.exchange, argument: line.argument, declared: line.declared, current: line.current, config: line.config, held: line.held },
    { code: 'BRIDGE_ERR_BROKER_REFUSED', exchange: 'telemetry', argument: 'durable', declared: 'true', current: 'false', config: 'bridge.yaml:8:7 (amqp.exchanges[1])', held: ['uplink rule telemetry'] },
  );
  assert.equal(
    line.msg,
    `RabbitMQ refused exchange "telemetry" (406 ${DURABLE}): RabbitMQ has it with durable false, the configuration declares true: ` +
      'set durable: false at bridge.yaml:9:7 (amqp.exchanges[1].durable), or remove the entry to use the exchange as it is, or delete it on RabbitMQ ' +
      '(its bindings go with it) so that the bridge declares it as configured. Uplink rule telemetry waits until it is fixed; everything else flows. ' +
      'Retried every 120 s and on reload',
  );
  refusals.refuse('exchange:telemetry', { ...durableClash, error: { kind: 'configuration', code: 403, text: "ACCESS_REFUSED - access to exchange 'telemetry' in vhost '/' refused for user 'bridge'" } });
  assert.equal(lines.length, 2, 'a new answer is reported');
  assert.match(String(lines[1]!.msg), /grant the bridge's AMQP user configure permission on exchange "telemetry"/);
});

test('Refusals - accepting ends a refusal with one info line; the list feeds /readyz and the metric', () => {
  const { refusals, lines } = registry();
  refusals.refuse('exchange:telemetry', durableClash);
  refusals.refuse('downlink:commands', downlinkRefusal({ rule: 'commands', queue: 'commands', binding: null, configPath: 'downlink[0]' }, { kind: 'configuration', code: 404, text: "NOT_FOUND - no queue 'commands' in vhost '/'" }));
  assert.deepEqual(
    refusals.list().map(({ kind, name }) => `${kind} ${name}`),
    ['exchange telemetry', 'queue commands'],
  );
  assert.equal(
    refusals.list()[1]!.summary,
    `queue "commands" refused by RabbitMQ (404 NOT_FOUND - no queue 'commands' in vhost '/'), asked for by bridge.yaml:8:7 (downlink[0].queue); held: downlink rule commands`,
  );
  refusals.accept('exchange:telemetry');
  refusals.accept('exchange:telemetry');
  assert.deepEqual(refusals.keys(), ['downlink:commands']);
  assert.deepEqual(lines.slice(2).map((line) => [line.level, line.msg]), [[30, 'exchange "telemetry": RabbitMQ accepts it now; uplink rule telemetry no longer held']]);
});

test('refusalMessage - without a locator the entries are named by their paths; each kind of refusal says what to change', () => {
  const message = (refusal: Refusal) => refusalMessage(refusal, null);
  assert.match(message(durableClash), /set durable: false at amqp\.exchanges\[1\]\.durable/);
  const type = "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'telemetry' in vhost '/': received 'topic' but current is 'fanout'";
  assert.match(message({ ...durableClash, error: { kind: 'configuration', code: 406, text: type } }), /set type: fanout at amqp\.exchanges\[1\]\.type/);
  const alternate = "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange 'telemetry' in vhost '/': received none but current is the value 'ae' of type 'longstr'";
  assert.match(message({ ...durableClash, error: { kind: 'configuration', code: 406, text: alternate } }), /with alternate-exchange ae, the configuration declares none: remove the entry at amqp\.exchanges\[1\] to use the exchange as it is/);
  const missing = { kind: 'configuration' as const, code: 404, text: "NOT_FOUND - no exchange 'telemetry' in vhost '/'" };
  assert.match(message({ ...durableClash, error: missing, operation: 'check', entry: 'uplink[0].exchange' }), /declare it under amqp\.exchanges or create it on RabbitMQ, or name an existing exchange at uplink\[0\]\.exchange/);
  assert.match(message({ ...durableClash, error: missing, operation: 'publish' }), /it was deleted on RabbitMQ after the bridge declared it \(amqp\.exchanges\[1\]\): the bridge declares it again at the next retry or reload/);
  const dlx = "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'bridge.downlink.cmd' in vhost '/': received the value 'dlx' of type 'longstr' but current is none";
  const ownQueue = downlinkRefusal({ rule: 'cmd', queue: 'bridge.downlink.cmd', binding: { exchange: 'commands', key: '*', deadLetterExchange: 'dlx' }, configPath: 'downlink[3]' }, { kind: 'configuration', code: 406, text: dlx });
  assert.deepEqual([ownQueue.operation, ownQueue.entry], ['declare', 'downlink[3]']);
  assert.match(message(ownQueue), /set deadLetterExchange at downlink\[3\]\.deadLetterExchange to match, or give the rule another queueName, or delete the queue on RabbitMQ \(what it holds is lost\)/);
  const bind = downlinkRefusal({ rule: 'cmd', queue: 'q', binding: { exchange: 'nowhere', key: '*', deadLetterExchange: undefined }, configPath: 'downlink[3]' }, { kind: 'configuration', code: 404, text: "NOT_FOUND - no exchange 'nowhere' in vhost '/'" });
  assert.deepEqual([bind.resource, bind.operation, bind.entry], [{ kind: 'exchange', name: 'nowhere' }, 'bind', 'downlink[3].exchange']);
  const locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'q' in vhost '/'";
  assert.match(message(downlinkRefusal({ rule: 'r', queue: 'q', binding: null, configPath: 'downlink[0]' }, { kind: 'configuration', code: 405, text: locked })), /queue "q" is exclusive to another connection: close that one, or consume another queue at downlink\[0\]\.queue/);
});
