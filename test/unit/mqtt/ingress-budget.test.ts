import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressKey, IngressBudget, type FramingProgress, type IngressConnection, type IngressLimits } from '../../../src/mqtt/ingress-budget.js';
import type { LimitName } from '../../../src/mqtt/limits.js';

const KiB = 1024;
const LIMITS: IngressLimits = {
  maxConnectBytes: 64 * KiB,
  maxUnauthenticatedBytes: 1_024 * KiB,
  maxBufferedBytes: 4_096 * KiB,
  maxBufferedBytesPerAddress: 2_048 * KiB,
  maxConnectionsPerAddress: 3,
  packetTimeoutMs: 1_000,
};

interface Harness {
  budget: IngressBudget;
  refusals: Array<{ limit: LimitName; detail: string }>;
  clock: { now: number };
  open: (address?: string) => IngressConnection;
}

function harness(limits: Partial<IngressLimits> = {}): Harness {
  const clock = { now: 1_000_000 };
  const refusals: Harness['refusals'] = [];
  const budget = new IngressBudget({ limits: { ...LIMITS, ...limits }, now: () => clock.now });
  return {
    budget,
    refusals,
    clock,
    open(address = '192.0.2.1') {
      const connection = budget.admit(address, (limit, detail) => refusals.push({ limit, detail }));
      assert.equal(typeof connection, 'object', `admitted from ${address}`);
      return connection as IngressConnection;
    },
  };
}

const progress = (pendingEnd: number, incompleteBytes = 0, incompleteStartedInLastChunk = incompleteBytes > 0): FramingProgress => ({
  pendingEnd,
  incompleteBytes,
  incompleteStartedInLastChunk,
});

test('addressKey - IPv4 as it is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64 prefix', () => {
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::FFFF:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:0db8:0001:0002:0:0:0:ffff'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(addressKey('64:ff9b::192.0.2.7'), '64:ff9b:0:0::/64');
  assert.equal(addressKey('unknown'), 'unknown');
});

test('IngressBudget - at most maxConnectionsPerAddress connections per address; a closed one frees its place', () => {
  const { budget, open } = harness();
  const held = [open(), open(), open()];
  assert.equal(budget.admit('192.0.2.1', () => {}), 'connections_per_address');
  assert.equal(budget.admit('::ffff:192.0.2.1', () => {}), 'connections_per_address', 'the same address, written as IPv6');
  open('192.0.2.2');
  held[0]!.close();
  held[0]!.close(); // twice changes nothing
  open();
  assert.equal(budget.admit('192.0.2.1', () => {}), 'connections_per_address');
  assert.deepEqual(budget.usage('192.0.2.1').address, { connections: 3, bytes: 0 });
});

test('IngressBudget - the connections of one IPv6 /64 share the per-address limits', () => {
  const { budget, open } = harness();
  open('2001:db8:1:2::1');
  open('2001:db8:1:2::2');
  open('2001:db8:1:2:ffff::9');
  assert.equal(budget.admit('2001:db8:1:2::4', () => {}), 'connections_per_address');
  open('2001:db8:1:3::1');
});

test('IngressBudget - maxConnectionsPerAddress 0 admits any number', () => {
  const { open } = harness({ maxConnectionsPerAddress: 0 });
  for (let i = 0; i < 100; i++) open();
});

test('IngressBudget - before login everything sent is held; past maxConnectBytes (plus a fixed header) the connection is refused', () => {
  const { budget, open, refusals } = harness();
  const connection = open();
  assert.equal(connection.follow(connection.packets, progress(30)), true);
  assert.equal(budget.usage().unauthenticated, 30, 'a complete CONNECT is held too, while the login is checked');
  assert.equal(connection.follow(connection.packets, progress(64 * KiB + 5, 64 * KiB + 5 - 30)), true, 'everything up to a CONNECT of maxConnectBytes');
  assert.equal(refusals.length, 0);
  assert.equal(connection.follow(connection.packets, progress(64 * KiB + 6, 64 * KiB + 6 - 30)), false);
  assert.equal(refusals[0]!.limit, 'connect_size');
  assert.match(refusals[0]!.detail, /65542 bytes before login/);
});

test('IngressBudget - a CONNECT header announcing 16,000,000 bytes is refused at once', () => {
  const { open, refusals } = harness();
  const connection = open();
  assert.equal(connection.follow(connection.packets, progress(5 + 16_000_000, 5 + 16_000_000)), false);
  assert.deepEqual(refusals.map((refusal) => refusal.limit), ['connect_size']);
});

test('IngressBudget - after CONNACK 0 only an incomplete packet is held, and the login bytes leave the before-login total', () => {
  const { budget, open } = harness();
  const connection = open();
  connection.follow(connection.packets, progress(40));
  assert.deepEqual([budget.usage().unauthenticated, budget.usage().total], [40, 40]);
  connection.authenticate();
  assert.deepEqual([budget.usage().unauthenticated, budget.usage().total], [0, 0]);
  // A large packet beyond maxConnectBytes is fine now; it is held until it completes.
  assert.equal(connection.follow(connection.packets, progress(40 + 500 * KiB, 500 * KiB)), true);
  assert.deepEqual([budget.usage().unauthenticated, budget.usage().total], [0, 500 * KiB]);
  assert.equal(connection.follow(connection.packets, progress(40 + 500 * KiB)), true);
  assert.equal(budget.usage().total, 0);
});

test('IngressBudget - a packet incomplete at CONNACK stays charged as its announced size', () => {
  const { budget, open } = harness();
  const connection = open();
  // CONNECT (30 bytes) and the start of a 10 KiB PUBLISH in the same read.
  connection.follow(connection.packets, progress(30 + 10 * KiB, 10 * KiB));
  assert.equal(budget.usage().unauthenticated, 30 + 10 * KiB);
  connection.authenticate();
  assert.deepEqual([budget.usage().unauthenticated, budget.usage().total], [0, 10 * KiB]);
  connection.close();
  assert.deepEqual(budget.usage(), { total: 0, unauthenticated: 0, address: null });
});

test('IngressBudget - one address may hold a quarter of maxUnauthenticatedBytes; others still log in', () => {
  const { budget, open, refusals } = harness({ maxConnectionsPerAddress: 0 });
  // maxUnauthenticatedBytes 1 MiB: a quarter is 256 KiB.
  const connections = Array.from({ length: 5 }, () => open('192.0.2.1'));
  for (const connection of connections.slice(0, 4)) assert.equal(connection.follow(connection.packets, progress(60 * KiB, 60 * KiB)), true);
  assert.equal(budget.usage('192.0.2.1').address!.bytes, 240 * KiB);
  assert.equal(connections[4]!.follow(connections[4]!.packets, progress(17 * KiB, 17 * KiB)), false);
  assert.equal(refusals.at(-1)!.limit, 'unauthenticated_bytes');
  const other = open('192.0.2.9');
  assert.equal(other.follow(other.packets, progress(60 * KiB, 60 * KiB)), true, 'another address');
  connections[0]!.close();
  const again = open('192.0.2.1');
  assert.equal(again.follow(again.packets, progress(16 * KiB, 16 * KiB)), true, 'room again once one closed');
});

test('IngressBudget - the before-login total refuses past maxUnauthenticatedBytes, over all addresses', () => {
  const { budget, open, refusals } = harness({ maxUnauthenticatedBytes: 256 * KiB, maxConnectionsPerAddress: 0 });
  // A quarter per address: 64 KiB each, one CONNECT of 60 KiB per address.
  for (let i = 1; i <= 4; i++) {
    const connection = open(`192.0.2.${i}`);
    assert.equal(connection.follow(connection.packets, progress(60 * KiB, 60 * KiB)), true);
  }
  const late = open('192.0.2.5');
  assert.equal(late.follow(late.packets, progress(20 * KiB, 20 * KiB)), false);
  assert.equal(refusals.at(-1)!.limit, 'unauthenticated_bytes');
  assert.equal(budget.usage().unauthenticated, 240 * KiB);
});

test('IngressBudget - a connection holding at most 4 KiB is never refused by a shared budget', () => {
  const { budget, open, refusals } = harness({ maxUnauthenticatedBytes: 256 * KiB, maxConnectionsPerAddress: 0 });
  for (let i = 1; i <= 4; i++) {
    const connection = open(`192.0.2.${i}`);
    connection.follow(connection.packets, progress(64 * KiB, 64 * KiB));
  }
  assert.equal(budget.usage().unauthenticated, 256 * KiB, 'full');
  const login = open('198.51.100.1');
  assert.equal(login.follow(login.packets, progress(300)), true, 'an ordinary CONNECT still goes through');
  assert.equal(login.follow(login.packets, progress(4 * KiB)), true);
  assert.equal(login.follow(login.packets, progress(4 * KiB + 1, 1)), false);
  assert.deepEqual(refusals.map((refusal) => refusal.limit), ['unauthenticated_bytes']);
});

test('IngressBudget - incomplete packets of one address are bounded by maxBufferedBytesPerAddress; other addresses go on', () => {
  const { budget, open, refusals } = harness();
  const [a, b, c] = [open(), open(), open('192.0.2.2')];
  for (const connection of [a, b, c]) connection.authenticate();
  assert.equal(a.follow(a.packets, progress(1_500 * KiB, 1_500 * KiB)), true);
  assert.equal(b.follow(b.packets, progress(600 * KiB, 600 * KiB)), false);
  assert.equal(refusals[0]!.limit, 'buffered_bytes_per_address');
  assert.match(refusals[0]!.detail, /192\.0\.2\.1/);
  assert.equal(c.follow(c.packets, progress(600 * KiB, 600 * KiB)), true);
  a.follow(a.packets, progress(1_500 * KiB));
  assert.equal(budget.usage('192.0.2.1').address!.bytes, 0, 'the completed packet is released');
});

test('IngressBudget - maxBufferedBytesPerAddress 0 is no per-address limit; maxBufferedBytes still bounds the total', () => {
  const { budget, open, refusals } = harness({ maxBufferedBytesPerAddress: 0, maxConnectionsPerAddress: 0 });
  const connections = Array.from({ length: 5 }, () => open());
  for (const connection of connections) connection.authenticate();
  for (const connection of connections.slice(0, 4)) assert.equal(connection.follow(connection.packets, progress(1_000 * KiB, 1_000 * KiB)), true);
  assert.equal(connections[4]!.follow(connections[4]!.packets, progress(97 * KiB, 97 * KiB)), false);
  assert.equal(refusals[0]!.limit, 'buffered_bytes');
  connections[0]!.close();
  assert.equal(budget.usage().total, 3_000 * KiB);
  assert.equal(connections[4]!.follow(connections[4]!.packets, progress(97 * KiB, 97 * KiB)), true);
});

test('IngressBudget - the WebSocket layer and the MQTT layer of one connection add up after login', () => {
  const { budget, open } = harness();
  const connection = open();
  connection.follow(connection.frames, progress(40));
  connection.follow(connection.packets, progress(40));
  assert.equal(budget.usage().unauthenticated, 40, 'before login, one count of what arrived (the MQTT bytes came through the frames)');
  connection.authenticate();
  connection.follow(connection.packets, progress(40 + 100 * KiB, 100 * KiB)); // a packet spanning messages
  connection.follow(connection.frames, progress(40 + 200 * KiB, 150 * KiB)); // the next message, incomplete
  assert.equal(budget.usage().total, 250 * KiB);
  connection.close();
  assert.equal(budget.usage().total, 0);
});

test('IngressBudget - a packet incomplete for packetTimeoutMs closes its connection; time is counted from its first chunk', () => {
  const { budget, open, refusals, clock } = harness();
  const slow = open();
  const steady = open();
  slow.authenticate();
  steady.authenticate();
  slow.follow(slow.packets, progress(10 * KiB, 10 * KiB));
  clock.now += 600;
  slow.follow(slow.packets, progress(10 * KiB, 10 * KiB, false)); // more of the same packet
  // steady completes a packet and starts another now and then
  steady.follow(steady.packets, progress(100, 50));
  budget.sweep();
  assert.equal(refusals.length, 0);
  clock.now += 400;
  steady.follow(steady.packets, progress(300, 60));
  budget.sweep();
  assert.deepEqual(refusals.map((refusal) => refusal.limit), ['packet_timeout']);
  assert.equal(slow.closed, true);
  clock.now += 999;
  budget.sweep();
  assert.equal(refusals.length, 1, 'steady started a new packet 999 ms ago');
  clock.now += 1;
  budget.sweep();
  assert.equal(refusals.length, 2);
  budget.stop();
});

test('IngressBudget - a connection between packets, however long, is not timed out', () => {
  const { budget, open, refusals, clock } = harness();
  const idle = open();
  idle.authenticate();
  idle.follow(idle.packets, progress(100, 20));
  idle.follow(idle.packets, progress(120));
  clock.now += 60_000;
  budget.sweep();
  assert.equal(refusals.length, 0);
  budget.stop();
});
