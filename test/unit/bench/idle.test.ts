import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { openIdleConnection } from '../../../bench/lib/idle.js';
import { LoadGenerator } from '../../../bench/lib/load.js';

type Answer = 'accept' | 'refuse' | 'close';

/** An MQTT server stand-in that parses each CONNECT and answers as `answerFor` says. */
async function fakeServer(answerFor: (connect: IConnectPacket) => Answer): Promise<{ server: Server; port: number; connects: IConnectPacket[] }> {
  const connects: IConnectPacket[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd !== 'connect') return;
      connects.push(packet);
      const answer = answerFor(packet);
      if (answer === 'close') socket.destroy();
      else socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: answer === 'accept' ? 0 : 5, sessionPresent: false }));
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { server, port: (server.address() as AddressInfo).port, connects };
}

test('bench idle connection - a CONNECT with a client id of 200 bytes is well formed and accepted', async () => {
  const { port, connects } = await fakeServer(() => 'accept');
  const clientId = 'x'.repeat(200);
  const socket = await openIdleConnection({ host: '127.0.0.1', port, clientId, keepaliveSeconds: 20 });
  assert.ok(socket, 'the server accepted the connection');
  socket.destroy();
  assert.equal(connects.length, 1);
  assert.equal(connects[0]!.clientId, clientId);
  assert.equal(connects[0]!.keepalive, 20);
  assert.equal(connects[0]!.clean, true);
});

test('bench idle connection - null when the server closes the socket without a CONNACK', { timeout: 10_000 }, async () => {
  const { port } = await fakeServer(() => 'close');
  assert.equal(await openIdleConnection({ host: '127.0.0.1', port, clientId: 'closed', keepaliveSeconds: 20 }), null);
});

test('bench idle connection - null when the CONNACK refuses the connection', async () => {
  const { port } = await fakeServer(() => 'refuse');
  assert.equal(await openIdleConnection({ host: '127.0.0.1', port, clientId: 'refused', keepaliveSeconds: 20 }), null);
});

test('bench load generator - idle connections closed or refused by the server are counted as failed', { timeout: 60_000 }, async () => {
  const answers: Answer[] = ['accept', 'refuse', 'close'];
  const { port } = await fakeServer((connect) => answers[Number(connect.clientId.split('-').pop()) % answers.length]!);
  const load = LoadGenerator.start();
  after(() => load.stop());
  const opened = await load.run({ kind: 'idle', url: `mqtt://127.0.0.1:${port}`, connections: 6, keepaliveSeconds: 20, sources: ['127.0.0.1'] }, 'idle');
  assert.equal(opened.connected, 2);
  assert.equal(opened.failed, 4);
  await load.run({ kind: 'close' }, 'closed');
});
