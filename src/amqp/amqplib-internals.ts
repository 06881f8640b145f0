import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import amqplib, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { BridgeError } from '../errors.js';

/**
 * The one place that relies on amqplib beyond its typed API: how it shapes the errors it hands
 * over (RabbitMQ's reply code on `code` and its reply text inside the message; "message nacked"
 * and "channel closed" in a confirm callback), and its connection's socket and frame
 * multiplexer (batched writes). `checkAmqplibInternals` verifies at start, on throwaway objects
 * that never touch the network, that the amqplib installed still behaves so; a changed amqplib
 * then fails the start with a clear error instead of misreading nacks under load.
 */

/** What RabbitMQ answered when it closed a channel or the connection. */
export interface BrokerReply {
  /** The AMQP reply code (404, 406, 320, ...). */
  readonly code: number;
  /** The reply text, e.g. `NOT_FOUND - no exchange 'x' in vhost '/'`. */
  readonly text: string;
}

/** amqplib words a close as `... 406 (PRECONDITION-FAILED) with message "REPLY TEXT"`. */
const REPLY_TEXT = / with message "(.*)"$/s;
/** amqplib fails a confirm callback with this message when RabbitMQ nacks the publish. */
const NACKED = 'message nacked';

/** RabbitMQ's reply in an error amqplib raised for a closed channel or connection; null for other errors (a socket's, say). */
export function brokerReply(error: unknown): BrokerReply | null {
  if (!(error instanceof Error)) return null;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'number') return null;
  return { code, text: REPLY_TEXT.exec(error.message)?.[1] ?? error.message };
}

export type ConfirmOutcome = 'confirmed' | 'nacked' | 'channel-closed';

/**
 * What a confirm channel's publish callback was told: amqplib calls it with null for an ack,
 * with "message nacked" for a nack, and with "channel closed" when the channel closes first.
 */
export function confirmOutcome(error: Error | null): ConfirmOutcome {
  if (error === null) return 'confirmed';
  return error.message === NACKED ? 'nacked' : 'channel-closed';
}

/** amqplib refused an operation because the channel or connection is closing or closed. */
export function isClosedChannelError(error: unknown): boolean {
  return error instanceof amqplib.IllegalOperationError;
}

interface ConnectionInternals {
  connection?: {
    stream?: { cork?(): void; uncork?(): void };
    muxer?: { _readIncoming?: () => void; batched?: boolean };
  };
}

/**
 * amqplib's multiplexer writes each frame (a publish is three: method, header, body) to the
 * socket with its own write call, and so its own system call. Corking the socket around each of
 * the multiplexer's passes turns a pass into one write of all its frames. When the internals are
 * not there it leaves the connection as it is and returns false.
 */
export function batchWrites(model: ChannelModel): boolean {
  const connection = (model as unknown as ConnectionInternals).connection;
  const socket = connection?.stream;
  const muxer = connection?.muxer;
  if (!socket?.cork || !socket.uncork || typeof muxer?._readIncoming !== 'function' || muxer.batched) return false;
  const readIncoming = muxer._readIncoming.bind(muxer);
  muxer._readIncoming = () => {
    socket.cork!();
    try {
      readIncoming();
    } finally {
      socket.uncork!();
    }
  };
  muxer.batched = true;
  return true;
}

interface ChannelInternals {
  ch?: number;
  connection?: {
    frameMax?: number;
    sentSinceLastCheck?: boolean;
    channels?: Array<{ buffer?: { write?(chunk: Buffer): boolean; writableNeedDrain?: boolean } } | undefined>;
  };
  pushConfirmCallback?(callback: (error: Error | null) => void): void;
}

/** Writes basic.publish frames, encoded by the bridge, on a confirm channel. */
export interface FrameWriter {
  /** The channel's number, which each frame carries. */
  readonly channelNumber: number;
  /** The largest frame the connection negotiated. */
  frameMax(): number;
  /**
   * Registers `confirmed` for RabbitMQ's ack or nack of the next publish written, as amqplib's own
   * publish does. Throws amqplib's IllegalOperationError once the channel is closing or closed.
   */
  expectConfirm(confirmed: (error: Error | null) => void): void;
  /**
   * Writes the frames of one or more publishes, in the order their confirms were expected.
   * Nothing is written once the channel is closing or closed: amqplib fails their confirms then.
   */
  writeFrames(frames: Buffer): void;
  /** The channel's buffer is full: amqplib's channel emits 'drain' when it has room again. */
  needsDrain(): boolean;
}

/**
 * amqplib encodes every publish with a generic encoder (its header table type by type) and
 * copies the frames into a new buffer. The bridge encodes them itself (publish-frames.ts) and
 * hands them to the channel's frame buffer, where amqplib's own publish puts them, so the
 * multiplexer, the confirm bookkeeping and the close handling stay amqplib's. Null when the
 * channel is not as expected.
 */
export function frameWriter(channel: ConfirmChannel): FrameWriter | null {
  const internals = channel as unknown as ChannelInternals;
  const connection = internals.connection;
  const channelNumber = internals.ch;
  const buffer = typeof channelNumber === 'number' ? connection?.channels?.[channelNumber]?.buffer : undefined;
  if (typeof channelNumber !== 'number' || !connection || typeof connection.frameMax !== 'number' || typeof buffer?.write !== 'function' || typeof internals.pushConfirmCallback !== 'function') {
    return null;
  }
  const pushConfirmCallback = internals.pushConfirmCallback.bind(channel);
  // amqplib replaces a closing or closed channel's (and connection's) send methods with ones that throw.
  const closing = () => Object.hasOwn(channel, 'sendMessage') || Object.hasOwn(connection, 'sendMessage');
  return {
    channelNumber,
    frameMax: () => connection.frameMax!,
    expectConfirm(confirmed) {
      if (closing()) throw new amqplib.IllegalOperationError('Channel closed', '');
      pushConfirmCallback(confirmed);
    },
    writeFrames(frames) {
      if (closing()) return;
      connection.sentSinceLastCheck = true;
      buffer.write!(frames);
    },
    needsDrain: () => buffer.writableNeedDrain === true,
  };
}

/** Loads a module of the installed amqplib by its path in the package (its `exports` name only the public entry points). */
const fromAmqplib = createRequire(createRequire(import.meta.url).resolve('amqplib'));

/** The installed amqplib's version, for error messages. */
export function amqplibVersion(): string {
  try {
    return (fromAmqplib('./package.json') as { version: string }).version;
  } catch {
    return '(unknown version)';
  }
}

interface AmqplibModules {
  Connection: new (stream: PassThrough) => unknown;
  ChannelModel: new (connection: unknown) => ChannelModel;
  ConfirmChannel: new (connection: unknown) => {
    allocate(): unknown;
    pushConfirmCallback(callback: (error: Error | null) => void): void;
    emit(event: string, ...args: unknown[]): boolean;
  };
  convertCloseFrameToError: (method: number, frame: { fields: { replyCode: number; replyText: string; classId: number; methodId: number } }) => Error;
}

/**
 * Checks, on throwaway objects over an in-memory stream, that this amqplib behaves as the
 * accessors above expect; throws BRIDGE_ERR_DEPENDENCY naming the amqplib version otherwise.
 * `load` loads amqplib's modules by their path in the package (a test gives a changed one).
 */
export function checkAmqplibInternals(load: (path: string) => unknown = fromAmqplib): void {
  const missing: string[] = [];
  if (typeof amqplib.IllegalOperationError !== 'function') missing.push('IllegalOperationError');
  let modules: AmqplibModules | null = null;
  try {
    modules = {
      Connection: (load('./lib/connection.js') as Pick<AmqplibModules, 'Connection'>).Connection,
      ...(load('./lib/channel_model.js') as Pick<AmqplibModules, 'ChannelModel' | 'ConfirmChannel'>),
      convertCloseFrameToError: (load('./lib/channel.js') as Pick<AmqplibModules, 'convertCloseFrameToError'>).convertCloseFrameToError,
    };
  } catch {
    missing.push('lib/connection.js, lib/channel_model.js or lib/channel.js');
  }
  if (modules) missing.push(...checkModules(modules));
  if (missing.length > 0) {
    throw new BridgeError(
      'BRIDGE_ERR_DEPENDENCY',
      `amqplib ${amqplibVersion()} lacks what the bridge relies on (${missing.join(', ')}); install the amqplib version package.json names`,
    );
  }
}

function checkModules({ Connection, ChannelModel, ConfirmChannel, convertCloseFrameToError }: AmqplibModules): string[] {
  const missing: string[] = [];
  try {
    const connection = new Connection(new PassThrough());
    if (!batchWrites(new ChannelModel(connection))) missing.push('ChannelModel.connection with stream.cork and muxer._readIncoming');
    const outcomes: ConfirmOutcome[] = [];
    const channel = new ConfirmChannel(connection);
    channel.allocate();
    if (!frameWriter(channel as unknown as ConfirmChannel)) missing.push('ConfirmChannel.ch, connection.frameMax and connection.channels[ch].buffer');
    channel.pushConfirmCallback((error) => outcomes.push(confirmOutcome(error)));
    channel.pushConfirmCallback((error) => outcomes.push(confirmOutcome(error)));
    channel.emit('nack', { deliveryTag: 1, multiple: false });
    channel.emit('close');
    if (outcomes.join() !== 'nacked,channel-closed') missing.push(`confirm callbacks told "message nacked" and "channel closed" (got ${outcomes.join() || 'no call'})`);
    const reply = brokerReply(convertCloseFrameToError(0, { fields: { replyCode: 406, replyText: "PRECONDITION_FAILED - inequivalent arg 'durable'", classId: 40, methodId: 10 } }));
    if (reply?.code !== 406 || reply.text !== "PRECONDITION_FAILED - inequivalent arg 'durable'") missing.push('the reply code and text of a channel closed by the server');
  } catch (error) {
    missing.push(`its connection and channel objects (${(error as Error).message})`);
  }
  return missing;
}
