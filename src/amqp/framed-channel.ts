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

/** The publishes of one tick are written into slabs of this size, as one chunk per slab. */
export const SLAB_BYTES = 128 * 1024;
/** A publish whose frames take more than this gets a buffer of its own. */
const LARGEST_IN_SLAB = SLAB_BYTES / 8;

/** An amqplib confirm channel that is given frames the bridge encoded (see publish-frames.ts) rather than amqplib's encoding. */
export function framedChannel(channel: ConfirmChannel): PublishChannel {
  const writer = frameWriter(channel);
  // checkAmqplibInternals verified the internals at start.
  if (!writer) throw new BridgeError('BRIDGE_ERR_DEPENDENCY', 'the amqplib confirm channel lacks the frame buffer the bridge writes publishes to');
  return new FramedChannel(channel, writer);
}

/**
 * Each publish's frames go into a slab shared by the publishes of the same tick, and the slab's
 * filled part goes to amqplib's channel buffer once, at the end of the tick (or when the slab is
 * full, or before a publish too large for it): amqplib's channel buffer, multiplexer and socket
 * then handle one chunk per tick instead of one per publish (three stream operations each, and
 * one more buffer for the socket's writev). Confirms are registered as each publish is taken, in
 * the order the frames are written, so RabbitMQ's delivery tags still match them.
 */
export class FramedChannel implements PublishChannel {
  private slab: Buffer | null = null;
  /** The part of the slab not yet handed to amqplib: [start, end). */
  private start = 0;
  private end = 0;
  private flushScheduled = false;
  private readonly flushAtEndOfTick = () => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(
    private readonly channel: ConfirmChannel,
    private readonly writer: FrameWriter,
  ) {}

  publish(message: ExchangeMessage, confirmed: (error: Error | null) => void): boolean {
    const { writer } = this;
    const size = encoder.prepare(writer.channelNumber, writer.frameMax(), message);
    writer.expectConfirm(confirmed);
    if (size > LARGEST_IN_SLAB) {
      this.flush();
      const frames = Buffer.allocUnsafe(size);
      encoder.writeTo(frames, 0);
      writer.writeFrames(frames);
      return !writer.needsDrain();
    }
    let slab = this.slab;
    if (slab === null || this.end + size > slab.length) {
      this.flush();
      slab = this.slab = Buffer.allocUnsafe(SLAB_BYTES);
      this.start = this.end = 0;
    }
    this.end = encoder.writeTo(slab, this.end);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushAtEndOfTick);
    }
    return !writer.needsDrain();
  }

  /** Hands the publishes taken since the last flush to amqplib. The slab's earlier parts stay as they are: amqplib may still hold them. */
  private flush(): void {
    if (this.slab === null || this.end === this.start) return;
    const frames = this.slab.subarray(this.start, this.end);
    this.start = this.end;
    this.writer.writeFrames(frames);
  }

  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: string, listener: (error: Error) => void): unknown {
    return this.channel.on(event, listener);
  }
}
