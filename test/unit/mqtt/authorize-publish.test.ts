import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Client, PublishPacket } from 'aedes';
import { DENIED_TOPIC, type AccessPolicy } from '../../../src/mqtt/access.js';
import { ClientIdentities } from '../../../src/mqtt/client-identity.js';
import { createAuthorizePublish } from '../../../src/mqtt/hooks/authorize-publish.js';
import { Qos2Forwards } from '../../../src/mqtt/qos2-forwards.js';
import { MemoryRetainedLedger } from '../../../src/mqtt/retained-ledger.js';
import { RetainedQuota } from '../../../src/mqtt/retained-quota.js';
import type { DevicePublish } from '../../../src/mqtt/types.js';

function setup(acl: { enforced: boolean; allowed: (clientId: string, username: string | undefined, topic: string) => boolean; onDeniedPublish?: 'disconnect' | 'drop' }) {
  const forwarded: DevicePublish[] = [];
  const asked: Array<{ clientId: string; username: string | undefined; topic: string }> = [];
  const denied: string[] = [];
  const access: AccessPolicy = {
    enforced: acl.enforced,
    canPublish: (identity, topic) => {
      asked.push({ clientId: identity.clientId, username: identity.username, topic });
      return acl.allowed(identity.clientId, identity.username, topic);
    },
    canSubscribe: () => true,
    onDeniedPublish: acl.onDeniedPublish ?? 'disconnect',
    denied: (action, clientId, topic) => denied.push(`${action}:${clientId}:${topic}`),
  };
  const identities = new ClientIdentities();
  const client = { id: 'dev-1' } as unknown as Client;
  identities.set(client, { username: 'alice', listener: 'tcp' });
  const lookups = { count: 0 };
  const get = identities.get.bind(identities);
  identities.get = (c) => {
    lookups.count++;
    return get(c);
  };
  const authorize = createAuthorizePublish(
    {
      onPublish(publish, done) {
        forwarded.push(publish);
        done(null);
      },
    },
    identities,
    new Qos2Forwards(),
    { maxTopicBytes: 100, maxTopicLevels: 8 },
    () => {},
    access,
  );
  const send = (topic: string, qos: 0 | 1 = 1) => {
    const packet = { cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: true, dup: false, messageId: 7 } as PublishPacket;
    let outcome: Error | null | undefined;
    authorize(client, packet, (error) => {
      outcome = error ?? null;
    });
    return { outcome, packet };
  };
  return { send, forwarded, asked, denied, lookups };
}

test('authorizePublish - without an ACL in force the ACL is not asked, and the publish goes on with its identity', () => {
  const { send, forwarded, asked } = setup({ enforced: false, allowed: () => false });
  const { outcome } = send('a/b');
  assert.equal(outcome, null);
  assert.deepEqual(asked, []);
  assert.deepEqual(forwarded, [{ topic: 'a/b', payload: Buffer.from('x'), qos: 1, retain: true, clientId: 'dev-1', username: 'alice' }]);
});

test('authorizePublish - with an ACL, the identity it is asked with is the one the publish goes on with, looked up once', () => {
  const { send, forwarded, asked, lookups } = setup({ enforced: true, allowed: () => true });
  send('a/b', 0);
  assert.deepEqual(asked, [{ clientId: 'dev-1', username: 'alice', topic: 'a/b' }]);
  assert.equal(forwarded.length, 1);
  assert.equal(forwarded[0]!.clientId, 'dev-1');
  assert.equal(forwarded[0]!.username, 'alice');
  assert.equal(lookups.count, 1, 'one identity lookup per publish');
});

test('authorizePublish - a publish the ACL denies goes nowhere: refused (disconnect) or acknowledged to the denied topic (drop)', () => {
  const disconnect = setup({ enforced: true, allowed: (_clientId, _username, topic) => topic !== 'secret' });
  const refused = disconnect.send('secret').outcome as (Error & { code?: string }) | null;
  assert.equal(refused?.code, 'BRIDGE_ERR_PUBLISH_REFUSED');
  assert.equal(refused?.message, 'the ACL does not allow publishing on "secret"');
  assert.deepEqual(disconnect.denied, ['publish:dev-1:secret']);
  assert.deepEqual(disconnect.forwarded, []);

  const drop = setup({ enforced: true, allowed: () => false, onDeniedPublish: 'drop' });
  const { outcome, packet } = drop.send('secret');
  assert.equal(outcome, null);
  assert.equal(packet.topic, DENIED_TOPIC);
  assert.equal(packet.retain, false);
  assert.deepEqual(drop.forwarded, []);
});

test('authorizePublish - a $SYS/ topic and a topic over a limit are refused with BRIDGE_ERR_PUBLISH_REFUSED, and forwarded nowhere', () => {
  const { send, forwarded } = setup({ enforced: false, allowed: () => true });
  const refusal = (topic: string) => {
    const error = send(topic).outcome as (Error & { code?: string }) | null;
    return error && { code: error.code, message: error.message };
  };
  assert.deepEqual(refusal('$SYS/broker/uptime'), { code: 'BRIDGE_ERR_PUBLISH_REFUSED', message: '$SYS/ topics are reserved for the server' });
  assert.deepEqual(refusal('a/b/c/d/e/f/g/h/i'), { code: 'BRIDGE_ERR_PUBLISH_REFUSED', message: 'topic exceeds the level limit' });
  assert.deepEqual(refusal('x'.repeat(101)), { code: 'BRIDGE_ERR_PUBLISH_REFUSED', message: 'topic exceeds the length limit' });
  assert.deepEqual(forwarded, []);
});

/** authorizePublish with the retained limits of `quota`, a handler that answers with `answer`, and what it forwarded and refused. */
function retainedSetup(limits: { maxRetainedMessagesPerUser: number }, answer: Error | null = null) {
  const ledger = new MemoryRetainedLedger({ maxRetainedMessages: 100, maxRetainedBytes: 100_000, maxRetainedBytesPerUser: 100_000, ...limits });
  const quota = new RetainedQuota(ledger);
  const forwarded: string[] = [];
  const refusals: string[] = [];
  const identities = new ClientIdentities();
  const client = { id: 'dev-1', closed: false } as unknown as Client;
  identities.set(client, { username: 'alice', listener: 'tcp' });
  const authorize = createAuthorizePublish(
    {
      onPublish(publish, done) {
        forwarded.push(publish.topic);
        done(answer);
      },
    },
    identities,
    new Qos2Forwards(),
    { maxTopicBytes: 100, maxTopicLevels: 8 },
    (limit, _client, topic) => refusals.push(`${limit}:${topic}`),
    null,
    null,
    quota,
  );
  const send = (topic: string, from: Client = client) => {
    const packet = { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: true, dup: false, messageId: 7 } as PublishPacket;
    let outcome: Error | null | undefined;
    authorize(from, packet, (error) => {
      outcome = error ?? null;
    });
    return { outcome, packet };
  };
  return { send, forwarded, refusals, ledger, quota, client };
}

test('authorizePublish - a retained publish past a retained limit is refused before it is forwarded, and counted with the limit', () => {
  const { send, forwarded, refusals, ledger } = retainedSetup({ maxRetainedMessagesPerUser: 1 });
  assert.equal(send('a/1').outcome, null);
  const refused = send('a/2').outcome as (Error & { code?: string }) | null;
  assert.equal(refused?.code, 'BRIDGE_ERR_RETAINED_LIMIT');
  assert.equal(refused?.message, 'retained message on "a/2" refused: it would pass the retained_messages_per_user limit');
  assert.deepEqual(forwarded, ['a/1'], 'the refused one never reaches the handler (AMQP)');
  assert.deepEqual(refusals, ['retained_messages_per_user:a/2']);
  assert.deepEqual(ledger.reserved('alice'), { messages: 1, bytes: 4 }, 'the first holds its room until aedes stores it');
});

test('authorizePublish - a retained publish that fails onward (nacked) gives back its room', () => {
  const { send, ledger } = retainedSetup({ maxRetainedMessagesPerUser: 1 }, new Error('nacked'));
  assert.match(String(send('a/1').outcome), /nacked/);
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
});

test('authorizePublish - a will (authorized after its connection closed) is checked too, and its room is not tied to the closed connection', async () => {
  const { send, forwarded, ledger, quota, client } = retainedSetup({ maxRetainedMessagesPerUser: 1 });
  (client as unknown as { closed: boolean }).closed = true;
  const will = send('will/topic');
  assert.equal(will.outcome, null);
  quota.connectionClosed(client);
  assert.deepEqual(ledger.reserved('alice'), { messages: 1, bytes: 11 }, 'held until aedes stores the will');
  await quota.stored(will.packet as { topic: string; payload: Buffer });
  assert.deepEqual(ledger.usageOf('alice'), { messages: 1, bytes: 11 });
  assert.match(String(send('will/other').outcome), /retained_messages_per_user/);
  assert.deepEqual(forwarded, ['will/topic']);
});
