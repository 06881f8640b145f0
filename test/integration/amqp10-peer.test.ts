import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { Amqp10Peer } from '../helpers/amqp10.js';
import { makeCertificates } from '../helpers/certs.js';
import { delay, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { startOwnRedis } from '../helpers/redis.js';

/**
 * The AMQP 1.0 back end against a peer the test controls (rhea's server side): SASL, settlement
 * outcomes and the QoS table, credit withheld, a refused address, and a connection cut with
 * transfers in flight.
 */

const ALL_TO = (address: string) => [{ name: 'all', topic: '#', address, subject: '{#}' }];

async function bridgeOn(peer: Amqp10Peer, url = peer.url, extra: Record<string, unknown> = {}): Promise<TestBridge> {
  return startTestBridge({
    amqp: { protocol: '1.0', url, containerId: 'peer-test', reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, ...extra },
    uplink: ALL_TO('uplink'),
  });
}

const failed = (bridge: TestBridge, reason: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason });
const dropped = (bridge: TestBridge, reason: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason });

describe('AMQP 1.0: SASL and the container id', () => {
  test('credentials in the URL are sent with PLAIN; the container id is the configured one', async () => {
    const peer = await Amqp10Peer.start({ plain: true });
    const bridge = await bridgeOn(peer, `amqp://bridge-user:s%40cret@127.0.0.1:${peer.port}`);
    try {
      assert.deepEqual(peer.logins, [{ mechanism: 'PLAIN', username: 'bridge-user', password: 's@cret' }]);
      assert.equal((peer.connections[0] as unknown as { remote: { open?: { container_id?: string } } } | undefined)?.remote.open?.container_id, 'peer-test');
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });

  test('no credentials: ANONYMOUS', async () => {
    const peer = await Amqp10Peer.start();
    const bridge = await bridgeOn(peer);
    try {
      assert.deepEqual(peer.logins.map(({ mechanism }) => mechanism), ['ANONYMOUS']);
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });
  test('amqps with a client certificate and no password: EXTERNAL (a peer that offers nothing else)', async () => {
    const certs = makeCertificates('bridge-client');
    const peer = await Amqp10Peer.start({ external: { key: certs.read(certs.serverKey), cert: certs.read(certs.serverCert), ca: certs.read(certs.ca) } });
    const bridge = await startTestBridge({
      amqp: { protocol: '1.0', url: `amqps://localhost:${peer.port}`, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } },
      uplink: ALL_TO('uplink'),
    });
    try {
      assert.deepEqual(peer.logins.map(({ mechanism }) => mechanism), ['EXTERNAL']);
      const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
      await device.publishAsync('over/tls', 'x', { qos: 1 });
      await device.endAsync();
      assert.equal(peer.transfers.at(-1)?.message.subject, 'over.tls');
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });
});

describe('AMQP 1.0: outcomes and the QoS table', () => {
  let peer: Amqp10Peer;
  let bridge: TestBridge;
  after(async () => {
    await bridge?.stop();
    await peer?.stop();
  });

  test('QoS 1: PUBACK only once the broker settled the transfer as accepted', async () => {
    peer = await Amqp10Peer.start();
    bridge = await bridgeOn(peer);
    peer.autoSettle = null;
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    let acked = false;
    device.publish('a/b', Buffer.from('held'), { qos: 1 }, () => (acked = true));
    await waitFor(() => peer.transfers.length === 1, 'the transfer at the peer');
    await delay(300);
    assert.equal(acked, false, 'no PUBACK while the transfer is unsettled');
    assert.equal(peer.transfers[0]!.message.subject, 'a.b');
    peer.settle(peer.transfers[0]!, 'accept');
    await waitFor(() => acked, 'the PUBACK after accepted');
    await device.endAsync();
  });

  for (const [outcome, reason] of [
    ['reject', 'rejected'],
    ['release', 'released'],
    ['modify', 'modified'],
  ] as const) {
    test(`QoS 1: ${reason} is never acknowledged and counted; the device's retransmission is then accepted`, async () => {
      peer.autoSettle = null;
      const before = peer.transfers.length;
      const failedBefore = await failed(bridge, reason);
      const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev'), reconnectPeriod: 100 });
      let acked = false;
      device.publish(`x/${reason}`, Buffer.from(reason), { qos: 1 }, () => (acked = true));
      await waitFor(() => peer.transfers.length === before + 1, 'the first transfer');
      peer.settle(peer.transfers[before]!, outcome);
      await waitFor(async () => (await failed(bridge, reason)) === failedBefore + 1, `uplink_failed_total{reason="${reason}"}`);
      assert.equal(acked, false);
      peer.autoSettle = 'accept';
      await waitFor(() => acked, 'the PUBACK of the retransmission');
      await device.endAsync();
      const copies = peer.transfers.slice(before).filter(({ message }) => message.subject === `x.${reason}`);
      assert.equal(copies.length, 2, 'the first transfer and the retransmission');
    });
  }

  test('QoS 2: the message reaches the broker once', async () => {
    peer.autoSettle = 'accept';
    const before = peer.transfers.length;
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    await device.publishAsync('q2/once', Buffer.from('exactly'), { qos: 2 });
    await device.endAsync();
    await delay(100);
    assert.equal(peer.transfers.slice(before).filter(({ message }) => message.subject === 'q2.once').length, 1);
  });
});

describe('AMQP 1.0: credit withheld, a refused address, a connection cut', () => {
  test('no credit: devices are throttled then blocked, QoS 0 is dropped and counted; credit again: every QoS 1 arrives once', async () => {
    const peer = await Amqp10Peer.start();
    peer.initialCredit = 5;
    peer.creditPerSettle = 0;
    const bridge = await bridgeOn(peer);
    try {
      const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
      const acked = new Set<number>();
      for (let i = 0; i < 20; i++) device.publish(`c/${i}`, Buffer.from(String(i)), { qos: 1 }, () => acked.add(i));
      await waitFor(() => peer.transfers.length === 5, 'the 5 transfers the credit allows');
      await waitFor(() => bridge.bridge.flow.state === 'blocked', () => `flow state blocked, is ${bridge.bridge.flow.state}`);
      const droppedBefore = await dropped(bridge, 'qos0_overflow');
      // Another device: the first one is not read any more while its publishes wait.
      const other = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
      await other.publishAsync('c/zero', Buffer.from('0'), { qos: 0 });
      await waitFor(async () => (await dropped(bridge, 'qos0_overflow')) === droppedBefore + 1, 'the QoS 0 publish dropped and counted');
      assert.equal(peer.transfers.length, 5);
      assert.equal(acked.size, 5);
      peer.creditPerSettle = 1;
      peer.grant(100);
      await waitFor(() => acked.size === 20, () => `20 PUBACKs, got ${acked.size}`);
      await waitFor(() => bridge.bridge.flow.state === 'open', 'flow open again');
      await device.endAsync();
      await other.endAsync();
      const subjects = peer.transfers.map(({ message }) => message.subject as string).filter((subject) => subject !== 'c.zero');
      assert.deepEqual(subjects, Array.from({ length: 20 }, (_, i) => `c.${i}`));
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });

  test('an address the broker refuses: QoS 1 is not acknowledged, QoS 0 is dropped, both counted; /readyz names it; other addresses flow', async () => {
    const peer = await Amqp10Peer.start();
    peer.refusedAddresses.add('missing');
    const bridge = await startTestBridge({
      amqp: { protocol: '1.0', url: peer.url, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } },
      uplink: [
        { name: 'missing', topic: 'missing/#', address: 'missing' },
        { name: 'ok', topic: 'ok/#', address: 'present' },
      ],
    });
    try {
      const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev'), reconnectPeriod: 0 });
      const rejectedBefore = await failed(bridge, 'rejected');
      let acked = false;
      device.publish('missing/1', Buffer.from('x'), { qos: 1 }, () => (acked = true));
      await waitFor(async () => (await failed(bridge, 'rejected')) === rejectedBefore + 1, 'uplink_failed_total{reason="rejected"}');
      assert.equal(acked, false);
      assert.deepEqual(
        bridge.bridge.readiness().degraded,
        ['address "missing": the broker refuses it (amqp:not-found: no node "missing"); uplink to address "missing" waits'],
      );
      const device2 = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
      const droppedBefore = await dropped(bridge, 'address_refused');
      await device2.publishAsync('missing/0', Buffer.from('y'), { qos: 0 });
      await waitFor(async () => (await dropped(bridge, 'address_refused')) === droppedBefore + 1, 'uplink_dropped_total{reason="address_refused"}');
      await device2.publishAsync('ok/1', Buffer.from('z'), { qos: 1 });
      assert.deepEqual(peer.transfers.map(({ address }) => address), ['present']);
      await device2.endAsync();
      await device.endAsync(true);
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });

  test('a connection cut with transfers unsettled: they are sent again on the next connection, no device is acknowledged meanwhile, nothing acknowledged is lost', async () => {
    const peer = await Amqp10Peer.start();
    peer.autoSettle = null;
    const bridge = await bridgeOn(peer);
    try {
      const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
      const acked = new Set<number>();
      for (let i = 0; i < 10; i++) device.publish(`cut/${i}`, Buffer.from(String(i)), { qos: 1 }, () => acked.add(i));
      await waitFor(() => peer.transfers.length === 10, 'the 10 transfers at the peer');
      peer.cut();
      await waitFor(() => peer.transfers.length === 20, () => `the 10 transfers again, got ${peer.transfers.length - 10}`);
      assert.equal(acked.size, 0, 'no PUBACK for a transfer the broker never settled');
      peer.autoSettle = 'accept';
      for (const transfer of peer.transfers.slice(10)) peer.settle(transfer, 'accept');
      await waitFor(() => acked.size === 10, () => `10 PUBACKs, got ${acked.size}`);
      await device.endAsync();
      const accepted = peer.transfers.slice(10).map(({ message }) => message.subject as string);
      assert.deepEqual(accepted, Array.from({ length: 10 }, (_, i) => `cut.${i}`));
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });
});

describe('AMQP 1.0: downlink receivers', () => {
  test('a source address the broker refuses is reported and retried; once the broker takes it, messages flow and are accepted', async () => {
    const peer = await Amqp10Peer.start();
    peer.refusedAddresses.add('commands');
    const bridge = await startTestBridge({
      amqp: { protocol: '1.0', url: peer.url },
      downlink: [{ name: 'commands', address: 'commands', subject: '{device}.#', topic: 'd/{device}/{#}', prefetch: 5 }],
    });
    try {
      await waitFor(() => bridge.bridge.readiness().degraded.length === 1, 'the refusal reported');
      assert.match(bridge.bridge.readiness().degraded[0]!, /^address "commands": the broker refuses it \(amqp:not-found: no node "commands"\); downlink rule commands \(downlink\[0\]\) waits$/);
      peer.refusedAddresses.delete('commands');
      await waitFor(() => peer.senders.has('commands') && bridge.bridge.readiness().degraded.length === 0, 'the receiver attached again');
      const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
      const got: string[] = [];
      device.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
      await device.subscribeAsync('d/#', { qos: 1 });
      assert.equal(await peer.sendTo('commands', { subject: 'd1.reboot', body: 'now' }), 'accepted');
      assert.equal(await peer.sendTo('commands', { subject: 'nomatch', body: { not: 'bytes' } }), 'rejected');
      await waitFor(() => got.length === 1, 'the command');
      assert.deepEqual(got, ['d/d1/reboot=now']);
      await device.endAsync();
    } finally {
      await bridge.stop();
      await peer.stop();
    }
  });
});

describe('AMQP 1.0: a transient MQTT-side failure', () => {
  test('a delivery the MQTT side cannot take now (Redis away for a persistent session) is released, not accepted or rejected; once Redis is back it is accepted and the device gets it', async () => {
    const redis = await startOwnRedis();
    const peer = await Amqp10Peer.start();
    const bridge = await startTestBridge({
      mqtt: { persistence: { type: 'redis', url: redis.url, keyPrefix: `${uniqueName('amqp10-released')}:` } },
      amqp: { protocol: '1.0', url: peer.url },
      downlink: [{ name: 'commands', address: 'commands', subject: '{device}.#', topic: 'd/{device}/{#}', qos: 1, prefetch: 5 }],
    });
    try {
      const clientId = uniqueName('persistent');
      const first = await connectClient(bridge.url('tcp'), { clientId, clean: false });
      await first.subscribeAsync('d/d1/#', { qos: 1 });
      await first.endAsync();
      await redis.stop('SIGKILL');
      const requeuedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'commands' });
      assert.equal(await peer.sendTo('commands', { subject: 'd1.reboot', body: 'while Redis is away' }), 'released');
      assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'commands' }), requeuedBefore + 1);

      await redis.start();
      await waitFor(() => bridge.bridge.readiness().ready, () => `the bridge ready again (${bridge.bridge.readiness().reasons.join('; ')})`, 20_000);
      assert.equal(await peer.sendTo('commands', { subject: 'd1.reboot', body: 'again' }), 'accepted');
      const got: string[] = [];
      // Listening before the CONNACK: the queued command follows it at once.
      const back = mqtt.connect(bridge.url('tcp'), { protocolVersion: 4, reconnectPeriod: 0, clientId, clean: false });
      back.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
      await waitFor(() => got.length === 1, 'the queued command');
      assert.deepEqual(got, ['d/d1/reboot=again']);
      await back.endAsync();
    } finally {
      await bridge.stop();
      await peer.stop();
      await redis.remove();
    }
  });
});
