import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { deleteExchanges, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge } from '../helpers/bridge.js';
import { makeCertificates, type TestCertificates } from '../helpers/certs.js';
import { captureLogs } from '../helpers/log-capture.js';
import { TlsTerminatingProxy } from '../helpers/tls-proxy.js';

const exchange = uniqueName('amqps');
let certs: TestCertificates;
let proxy: TlsTerminatingProxy;

before(async () => {
  certs = makeCertificates('bridge-client');
  proxy = await TlsTerminatingProxy.start({ cert: certs.read(certs.serverCert), key: certs.read(certs.serverKey), ca: certs.read(certs.ca) });
  await withChannel((channel) => channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false }));
});

after(async () => {
  await proxy?.close();
  await deleteExchanges(exchange);
});

test('amqps - the bridge verifies RabbitMQ against amqp.tls.ca, presents its client certificate, and forwards', async () => {
  const bridge = await startTestBridge({
    amqp: { url: `amqps://guest:guest@127.0.0.1:${proxy.port}`, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
  });
  const consumer = await TestConsumer.create([{ exchange, key: '#' }]);
  const client = await connectClient(bridge.url('tcp'));
  try {
    await client.publishAsync('over/tls', 'encrypted', { qos: 1 });
    const [message] = await consumer.waitForCount(1);
    assert.equal(message!.fields.routingKey, 'over.tls');
    assert.ok(proxy.clientNames.includes('bridge-client'), 'the bridge presented its client certificate');
  } finally {
    await client.endAsync();
    await consumer.close();
    await bridge.stop();
  }
});

test('amqps - a RabbitMQ certificate from another CA is refused; the bridge keeps retrying and says why', async () => {
  const { logger, lines } = captureLogs();
  const other = makeCertificates('someone');
  const bridge = await startTestBridge(
    { amqp: { url: `amqps://guest:guest@127.0.0.1:${proxy.port}`, tls: { ca: other.ca, cert: certs.clientCert, key: certs.clientKey }, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } } },
    { logger, waitForReady: false },
  );
  try {
    await waitFor(() => lines.filter((line) => line.msg === 'AMQP connection attempt failed').length >= 2, 'two failed attempts to be logged');
    const failure = lines.find((line) => line.msg === 'AMQP connection attempt failed')!;
    assert.match(String((failure.err as { message?: string }).message), /certificate/i);
    assert.equal(bridge.bridge.amqpState, 'connecting');
  } finally {
    await bridge.stop();
  }
});

test('amqps - with a client certificate and no password in the URL the bridge uses the EXTERNAL mechanism', async () => {
  const { logger, lines } = captureLogs();
  const bridge = await startTestBridge(
    { amqp: { url: `amqps://127.0.0.1:${proxy.port}`, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } } },
    { logger, waitForReady: false },
  );
  try {
    // This RabbitMQ has no rabbitmq_auth_mechanism_ssl, so it does not offer EXTERNAL: the attempt says so.
    await waitFor(() => lines.some((line) => line.msg === 'AMQP connection attempt failed'), 'a failed attempt to be logged');
    const failure = lines.find((line) => line.msg === 'AMQP connection attempt failed')!;
    assert.match(String((failure.err as { message?: string }).message), /EXTERNAL/);
  } finally {
    await bridge.stop();
  }
});
