/**
 * The load generator, in a process of its own (bench/lib/load.ts forks it), so that devices do
 * not compete with the consumer and the measurements for the same event loop. It runs one
 * command at a time, sent over IPC, and answers with its figures.
 */
import type { Socket } from 'node:net';
import amqplib from 'amqplib';
import mqtt, { type MqttClient } from 'mqtt';
import { DeliveryCount } from './lib/delivery-count.js';
import { openIdleConnection } from './lib/idle.js';
import { latencyHistogram, percentilesMs } from './lib/stats.js';
import type { LoadCommand, LoadResult } from './lib/load.js';
import { payloadFor } from './lib/payload.js';
import { benchClockMs } from './lib/clock.js';

const now = benchClockMs;

async function connectMany(url: string, count: number, prefix: string, clean = true): Promise<MqttClient[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) => mqtt.connectAsync(url, { clientId: `${prefix}-${i}-${process.pid}`, protocolVersion: 4, reconnectPeriod: 0, clean })),
  );
}

async function publishFlat(command: Extract<LoadCommand, { kind: 'publish' }>): Promise<LoadResult> {
  const clients = await connectMany(command.url, command.clients, 'bench-pub');
  const started = now();
  await Promise.all(
    clients.map(async (client, c) => {
      let inFlight: Array<Promise<unknown>> = [];
      for (let i = 0; i < command.perClient; i++) {
        const id = c * command.perClient + i;
        inFlight.push(client.publishAsync(`${command.topicPrefix}/${c}`, payloadFor(id, now(), command.payloadBytes), { qos: command.qos }));
        if (inFlight.length >= command.window) {
          await Promise.all(inFlight);
          inFlight = [];
        }
      }
      await Promise.all(inFlight);
    }),
  );
  const ms = now() - started;
  await Promise.all(clients.map((client) => client.endAsync()));
  return { kind: 'published', sent: command.clients * command.perClient, startedAt: started, ms };
}

/**
 * Publishes at a fixed rate, spread over the clients. Latencies count from the intended send
 * time, not the actual one, so a bridge that holds the load back is not flattered (no
 * coordinated omission).
 */
async function publishPaced(command: Extract<LoadCommand, { kind: 'paced' }>): Promise<LoadResult> {
  const clients = await connectMany(command.url, command.clients, 'bench-paced');
  const puback = latencyHistogram();
  const total = Math.round(command.rate * command.seconds);
  const started = now();
  const pending: Array<Promise<unknown>> = [];
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - started) / 1000) * command.rate) + 1);
    for (; sent < due; sent++) {
      const intended = started + (sent / command.rate) * 1000;
      const client = clients[sent % clients.length]!;
      pending.push(
        client.publishAsync(`${command.topicPrefix}/${sent % clients.length}`, payloadFor(sent, intended, command.payloadBytes), { qos: command.qos }).then(() => {
          puback.recordValue(Math.max(1, Math.round((now() - intended) * 1000)));
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  await Promise.all(clients.map((client) => client.endAsync()));
  return { kind: 'paced', sent, puback: percentilesMs(puback), seconds: (now() - started) / 1000 };
}

let subscribers: MqttClient[] = [];
const deliveries = new DeliveryCount();
let latestDelivery = 0;

async function subscribe(command: Extract<LoadCommand, { kind: 'subscribe' }>): Promise<LoadResult> {
  deliveries.clear();
  latestDelivery = 0;
  subscribers = await connectMany(command.url, command.subscribers, command.clientPrefix, command.clean);
  await Promise.all(
    subscribers.map(async (client, i) => {
      client.on('message', (_topic, payload) => {
        deliveries.record(payload);
        latestDelivery = now();
      });
      await client.subscribeAsync(`${command.topicPrefix}/d${i}`, { qos: command.qos });
    }),
  );
  return { kind: 'subscribed' };
}

async function awaitDeliveries(command: Extract<LoadCommand, { kind: 'await' }>): Promise<LoadResult> {
  const deadline = Date.now() + command.timeoutMs;
  while (deliveries.distinct < command.expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  const result: LoadResult = { kind: 'delivered', distinct: deliveries.distinct, duplicated: deliveries.duplicated, lastAt: latestDelivery };
  await Promise.all(subscribers.map((client) => client.endAsync()));
  subscribers = [];
  return result;
}

let idle: Socket[] = [];
let pinger: NodeJS.Timeout | null = null;

async function openIdle(command: Extract<LoadCommand, { kind: 'idle' }>): Promise<LoadResult> {
  const target = new URL(command.url);
  const started = now();
  let failed = 0;
  const open = (i: number) =>
    openIdleConnection({
      host: target.hostname,
      port: Number(target.port),
      localAddress: command.sources[i % command.sources.length],
      clientId: `bench-idle-${process.pid}-${i}`,
      keepaliveSeconds: command.keepaliveSeconds,
    });
  const batch = 500;
  for (let i = 0; i < command.connections; i += batch) {
    const opened = await Promise.all(Array.from({ length: Math.min(batch, command.connections - i) }, (_, j) => open(i + j)));
    for (const socket of opened) {
      if (socket) idle.push(socket);
      else failed++;
    }
  }
  const seconds = (now() - started) / 1000;
  // Keep-alive traffic, as real idle devices send it: a PINGREQ per connection per half keep-alive.
  pinger = setInterval(() => {
    for (const socket of idle) socket.write(Buffer.from([0xc0, 0x00]));
  }, (command.keepaliveSeconds * 1000) / 2);
  return { kind: 'idle', connected: idle.length, failed, seconds };
}

function closeIdle(): LoadResult {
  if (pinger) clearInterval(pinger);
  pinger = null;
  for (const socket of idle) socket.destroy();
  idle = [];
  return { kind: 'closed' };
}

/** The ceiling: amqplib publishers straight to the exchange, with or without confirms. */
async function publishAmqp(command: Extract<LoadCommand, { kind: 'amqp-publish' }>): Promise<LoadResult> {
  const connections = await Promise.all(Array.from({ length: command.publishers }, () => amqplib.connect(command.amqpUrl)));
  const started = now();
  await Promise.all(
    connections.map(async (connection, c) => {
      const channel = command.confirm ? await connection.createConfirmChannel() : await connection.createChannel();
      for (let i = 0; i < command.perPublisher; i++) {
        const id = c * command.perPublisher + i;
        const writable = channel.publish(command.exchange, `${command.routingPrefix}.${c}`, payloadFor(id, now(), command.payloadBytes));
        if (command.confirm && i % command.window === command.window - 1) await (channel as amqplib.ConfirmChannel).waitForConfirms();
        else if (!writable) await new Promise((resolve) => channel.once('drain', resolve));
      }
      if (command.confirm) await (channel as amqplib.ConfirmChannel).waitForConfirms();
      await channel.close(); // after every publish written: closing the connection at once could drop buffered ones
    }),
  );
  const ms = now() - started;
  await Promise.all(connections.map((connection) => connection.close()));
  return { kind: 'published', sent: command.publishers * command.perPublisher, startedAt: started, ms };
}

async function run(command: LoadCommand): Promise<LoadResult> {
  switch (command.kind) {
    case 'amqp-publish':
      return publishAmqp(command);
    case 'publish':
      return publishFlat(command);
    case 'paced':
      return publishPaced(command);
    case 'subscribe':
      return subscribe(command);
    case 'await':
      return awaitDeliveries(command);
    case 'idle':
      return openIdle(command);
    case 'close':
      return closeIdle();
  }
}

process.on('message', (command: LoadCommand) => {
  run(command).then(
    (result) => process.send!(result),
    (error: Error) => process.send!({ kind: 'error', message: error.message }),
  );
});
