import type { ExchangeMessage, PublishFrameEncoder } from '../../src/amqp/publish-frames.js';

/** The frames of one publish in a buffer of their own, as the encoder writes them for the framed channel. */
export function encodeAlone(encoder: PublishFrameEncoder, channel: number, frameMax: number, message: ExchangeMessage): Buffer {
  const frames = Buffer.allocUnsafe(encoder.prepare(channel, frameMax, message));
  const end = encoder.writeTo(frames, 0);
  if (end !== frames.length) throw new Error(`writeTo ended at ${end}, prepare said ${frames.length}`);
  return frames;
}
