import assert from 'node:assert/strict';
import { test } from 'node:test';
import rhea, { type Connection } from 'rhea';
import { Amqp10Publisher } from '../../src/amqp10/publisher.js';
import type { PublishError } from '../../src/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Amqp10Peer } from '../helpers/amqp10.js';
import { waitFor } from '../helpers/amqp.js';

/** The AMQP 1.0 publisher on a connection to a peer of the test's own: the number of sender links stays bounded. */
test('Amqp10Publisher - past maxSenderLinks the least recently used idle sender is detached; its address gets a new one when used again', async () => {
  const peer = await Amqp10Peer.start();
  const connection: Connection = rhea.create_container().connect({ host: '127.0.0.1', port: peer.port, reconnect: false });
  connection.on('disconnected', () => {});
  await new Promise<void>((resolve) => connection.once('connection_open', () => resolve()));
  const publisher = new Amqp10Publisher({ maxUnsettled: 10, maxSenderLinks: 2, publishTimeoutMs: 10_000, logger: silentLogger() });
  publisher.attach(connection);
  const send = (address: string) =>
    new Promise<PublishError | null>((resolve) =>
      publisher.publish(
        { address, subject: undefined, content: Buffer.from(address), headers: {}, properties: { persistent: true }, messageId: address, timestamp: 0, receivedAt: Date.now(), atMostOnce: false },
        resolve,
      ),
    );
  try {
    assert.equal(await send('a'), null);
    assert.equal(await send('b'), null);
    assert.deepEqual(peer.openLinks().sort(), ['a', 'b']);
    assert.equal(await send('c'), null);
    await waitFor(() => peer.openLinks().sort().join() === 'b,c', () => `links b and c open, not ${peer.openLinks().join()}`);
    assert.equal(await send('a'), null);
    await waitFor(() => peer.openLinks().sort().join() === 'a,c', () => `links a and c open, not ${peer.openLinks().join()}`);
    assert.deepEqual(peer.transfers.map(({ address }) => address), ['a', 'b', 'c', 'a']);
  } finally {
    await publisher.close(0);
    connection.close();
    await peer.stop();
  }
});
