import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex, Writable } from 'node:stream';
import { createRequire } from 'node:module';
import { Aedes } from 'aedes';
import { writeAcknowledgementsWhole } from '../../../src/mqtt/acknowledgement-writer.js';

interface MqttPacket {
  writeToStream: (packet: object, stream: Writable, options?: { protocolVersion?: number }) => boolean;
  generate: (packet: object, options?: { protocolVersion?: number }) => Buffer;
}
const mqttPacket = createRequire(createRequire(import.meta.url).resolve('aedes'))('mqtt-packet') as MqttPacket;
const original = mqttPacket.writeToStream;
writeAcknowledgementsWhole();

/** A stream that records each write call's chunks, as the socket's writev would get them. */
function recorder() {
  const writes: Buffer[][] = [];
  const stream = new Writable({
    writev(chunks, callback) {
      writes.push(chunks.map(({ chunk }) => chunk as Buffer));
      callback();
    },
  });
  return { stream, writes };
}

const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

test('writeAcknowledgementsWhole - a 3.1.1 PUBACK, PUBREC or PUBCOMP is written as one buffer with the bytes mqtt-packet generates', async () => {
  assert.notEqual(mqttPacket.writeToStream, original);
  for (const cmd of ['puback', 'pubrec', 'pubcomp']) {
    for (const messageId of [0, 1, 255, 256, 4660, 65535]) {
      for (const options of [undefined, { protocolVersion: 4 }, { protocolVersion: 3 }]) {
        const { stream, writes } = recorder();
        assert.equal(mqttPacket.writeToStream({ cmd, messageId }, stream, options), true);
        await nextTick();
        assert.equal(writes.length, 1);
        assert.equal(writes[0]!.length, 1, `${cmd} ${messageId}: one buffer`);
        assert.deepEqual(writes[0]![0], mqttPacket.generate({ cmd, messageId }, options), `${cmd} ${messageId}`);
      }
    }
  }
});

test('writeAcknowledgementsWhole - the acknowledgements of one tick leave as one buffer at its end, in order, after what was written before them', async () => {
  const { stream, writes } = recorder();
  stream.write(Buffer.from([0xd0, 0])); // a PINGRESP written first
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 1 }, stream);
  mqttPacket.writeToStream({ cmd: 'pubrec', messageId: 2 }, stream);
  assert.equal(mqttPacket.writeToStream({ cmd: 'puback', messageId: 3 }, stream), true);
  assert.equal(writes.flat().length, 1, 'gathered until the end of the tick');
  await nextTick();
  assert.deepEqual(writes.map((chunks) => chunks.map((chunk) => chunk.toString('hex'))), [['d000'], ['4002000150020002400200' + '03']]);
});

test('writeAcknowledgementsWhole - a packet aedes writes after acknowledgements of the same tick goes after them; more than a buffer holds stay in order', async () => {
  const { stream, writes } = recorder();
  const publish = { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false };
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 7 }, stream);
  mqttPacket.writeToStream(publish, stream);
  for (let id = 1; id <= 300; id++) mqttPacket.writeToStream({ cmd: 'puback', messageId: id }, stream);
  await nextTick();
  await nextTick();
  const acks = Buffer.concat(Array.from({ length: 300 }, (_, i) => Buffer.from([0x40, 2, (i + 1) >> 8, (i + 1) & 0xff])));
  assert.deepEqual(Buffer.concat(writes.flat()), Buffer.concat([Buffer.from([0x40, 2, 0, 7]), mqttPacket.generate(publish), acks]));
  assert.deepEqual(writes.flat()[0], Buffer.from([0x40, 2, 0, 7]), 'the acknowledgement before the PUBLISH was written first, whole');
  assert.deepEqual(writes.flat().slice(-3).map((chunk) => chunk.length), [512, 512, 176], 'the 300 after it in buffers of 128');
});

test('writeAcknowledgementsWhole - nothing is written to a connection destroyed before the end of the tick', async () => {
  const { stream, writes } = recorder();
  const errors: Error[] = [];
  stream.on('error', (error) => errors.push(error));
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 1 }, stream);
  stream.destroy();
  await nextTick();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(writes, []);
  assert.deepEqual(errors, []);
});

test('writeAcknowledgementsWhole - every other packet, MQTT 5 and a bad packet id go to mqtt-packet as before', async () => {
  const packets: Array<[object, { protocolVersion: number } | undefined]> = [
    [{ cmd: 'pubrel', messageId: 7 }, undefined],
    [{ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false }, undefined],
    [{ cmd: 'suback', messageId: 3, granted: [1] }, undefined],
    [{ cmd: 'puback', messageId: 5, reasonCode: 16 }, { protocolVersion: 5 }],
  ];
  for (const [packet, options] of packets) {
    const { stream, writes } = recorder();
    mqttPacket.writeToStream(packet, stream, options);
    await nextTick();
    assert.deepEqual(Buffer.concat(writes.flat()), mqttPacket.generate(packet, options), JSON.stringify(packet));
  }
  // mqtt-packet destroys the stream for a packet id that is not a number and throws for one out of range.
  const outcome = async (write: MqttPacket['writeToStream'], messageId: unknown) => {
    const { stream, writes } = recorder();
    stream.on('error', () => {});
    try {
      write({ cmd: 'puback', messageId }, stream);
    } catch (error) {
      return `threw ${(error as Error).name}`;
    }
    await nextTick();
    return stream.destroyed ? 'destroyed' : Buffer.concat(writes.flat()).toString('hex');
  };
  for (const messageId of [undefined, '5', 1.5, -1, 65536]) {
    const expected = await outcome(original, messageId);
    assert.notEqual(expected, '');
    assert.equal(await outcome(mqttPacket.writeToStream, messageId), expected, `messageId ${String(messageId)}`);
  }
});

test('writeAcknowledgementsWhole - installing twice keeps one replacement; cacheNumbers still reaches mqtt-packet', () => {
  const installed = mqttPacket.writeToStream;
  assert.equal(writeAcknowledgementsWhole(), true);
  assert.equal(mqttPacket.writeToStream, installed);
  const numbers = mqttPacket.writeToStream as unknown as { cacheNumbers: boolean };
  assert.equal(numbers.cacheNumbers, true);
  numbers.cacheNumbers = false;
  assert.equal((original as unknown as { cacheNumbers: boolean }).cacheNumbers, false);
  numbers.cacheNumbers = true;
  assert.equal((original as unknown as { cacheNumbers: boolean }).cacheNumbers, true);
});

test('writeAcknowledgementsWhole - aedes acknowledges a QoS 1 PUBLISH with one 4-byte write', async () => {
  const broker = await Aedes.createBroker();
  const written: Buffer[][] = [];
  const isPuback = (chunks: Buffer[]) => chunks.some((chunk) => chunk[0] === 0x40);
  let pubackWritten: () => void = () => {};
  const puback = new Promise<void>((resolve) => (pubackWritten = resolve));
  const connection = new Duplex({
    read() {},
    writev(chunks, callback) {
      const buffers = chunks.map(({ chunk }) => chunk as Buffer);
      written.push(buffers);
      if (isPuback(buffers)) pubackWritten();
      callback();
    },
  });
  broker.handle(connection);
  try {
    connection.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'ack-test', keepalive: 0 }));
    connection.push(mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, messageId: 4660, retain: false, dup: false }));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([puback, new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
    assert.deepEqual(written.find(isPuback), [Buffer.from([0x40, 2, 0x12, 0x34])]);
  } finally {
    connection.destroy();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});
