import assert from 'node:assert/strict';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { mock, test } from 'node:test';
import amqplib from 'amqplib';
import { connectOptions } from '../../../src/amqp/connect-options.js';
import { configSchema, type BridgeConfig } from '../../../src/config/schema.js';

const amqp = (input: Record<string, unknown>): BridgeConfig['amqp'] => (configSchema.parse({ amqp: input }) as BridgeConfig).amqp;

test('amqp connect options - the connection name, and amqplib turns Nagle off on the socket it opens with them', async () => {
  const options = connectOptions(amqp({ url: 'amqp://127.0.0.1', connectionName: 'bridge-a' }));
  assert.deepEqual(options.clientProperties, { connection_name: 'bridge-a' });
  // A server that takes the connection and never answers: enough for amqplib to set up its socket.
  const server = createServer((socket) => socket.on('data', () => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const calls: boolean[] = [];
  const original = Object.getOwnPropertyDescriptor(Socket.prototype, 'setNoDelay')!.value as (this: Socket, noDelay?: boolean) => Socket;
  const spy = mock.method(Socket.prototype, 'setNoDelay', function (this: Socket, noDelay?: boolean) {
    calls.push(noDelay ?? true);
    return original.call(this, noDelay);
  });
  try {
    const { port } = server.address() as AddressInfo;
    await assert.rejects(amqplib.connect(`amqp://127.0.0.1:${port}`, options));
  } finally {
    spy.mock.restore();
    server.close();
  }
  assert.ok(calls.length > 0 && calls.every(Boolean), `setNoDelay calls: ${calls.join(', ')}`);
});
