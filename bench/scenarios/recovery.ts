import mqtt, { type MqttClient } from 'mqtt';
import { PUBLISHERS, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { closeConnectionsNamed } from '../../test/helpers/rabbitmqctl.js';

/**
 * QoS 1 streams from 10 clients while RabbitMQ closes the bridge's AMQP connection (as
 * `rabbitmqctl close_connection` does): the longest gap between two PUBACKs is the time to
 * reconnect, declare the topology and resend what was unconfirmed.
 */
export async function recovery(context: BenchContext): Promise<ScenarioResult> {
  const clients: MqttClient[] = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) =>
      mqtt.connectAsync(context.target.url, { clientId: `bench-rec-${context.tag}-${i}`, protocolVersion: 4, reconnectPeriod: 100, clean: false }),
    ),
  );
  let lastAck = performance.now();
  let longestGap = 0;
  let acked = 0;
  let running = true;
  const streams = clients.map(async (client, c) => {
    for (let i = 0; running; ) {
      const batch = Array.from({ length: 50 }, () =>
        client.publishAsync(`${context.target.prefix}/recovery/${c}`, `${i++}`, { qos: 1 }).then(() => {
          const now = performance.now();
          longestGap = Math.max(longestGap, now - lastAck);
          lastAck = now;
          acked++;
        }),
      );
      await Promise.all(batch);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const gapBeforeKill = longestGap;
  await closeConnectionsNamed(context.target.connectionName, 'bench: recovery');
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  running = false;
  await Promise.all(streams);
  await Promise.all(clients.map((client) => client.endAsync()));
  return {
    scenario: 'recovery',
    target: context.targetName,
    longestPubackGapMs: Math.round(longestGap),
    longestGapBeforeKillMs: Math.round(gapBeforeKill),
    acknowledged: acked,
  };
}
