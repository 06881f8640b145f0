import type { ConfirmChannel } from 'amqplib';
import { BridgeError } from '../errors.js';
import { frameWriter, type FrameWriter } from './amqplib-internals.js';
import { PublishFrameEncoder, type ExchangeMessage } from './publish-frames.js';

/** The confirm channel as the publisher uses it: one call per message, and amqplib's channel events. */
export interface PublishChannel {
  /** Writes the message; `confirmed` is called with RabbitMQ's ack (null) or an error. False: wait for 'drain'. */
  publish(message: ExchangeMessage, confirmed: (error: Error | null) => void): boolean;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** One encoder for every channel: encoding is synchronous, so its scratch buffer is never shared by two messages at once. */
const encoder = new PublishFrameEncoder();

/** An amqplib confirm channel that is given frames the bridge encoded (see publish-frames.ts) rather than amqplib's encoding. */
export function framedChannel(channel: ConfirmChannel): PublishChannel {
  const writer = frameWriter(channel);
  // checkAmqplibInternals verified the internals at start.
  if (!writer) throw new BridgeError('BRIDGE_ERR_DEPENDENCY', 'the amqplib confirm channel lacks the frame buffer the bridge writes publishes to');
  return new FramedChannel(channel, writer);
}

class FramedChannel implements PublishChannel {
  constructor(
    private readonly channel: ConfirmChannel,
    private readonly writer: FrameWriter,
  ) {}

  publish(message: ExchangeMessage, confirmed: (error: Error | null) => void): boolean {
    const { writer } = this;
    return writer.write(encoder.encode(writer.channelNumber, writer.frameMax(), message), confirmed);
  }

  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: string, listener: (error: Error) => void): unknown {
    return this.channel.on(event, listener);
  }
}
