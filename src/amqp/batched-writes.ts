import type { ChannelModel } from 'amqplib';

interface Internals {
  connection?: {
    stream?: { cork?(): void; uncork?(): void };
    muxer?: { _readIncoming?: () => void; batched?: boolean };
  };
}

/**
 * amqplib's multiplexer writes each frame (a publish is three: method, header, body) to the
 * socket with its own write call, and so its own system call. Corking the socket around each of
 * the multiplexer's passes turns a pass into one write of all its frames. This reaches into
 * amqplib's internals (`connection.muxer`), so it checks they are there and otherwise leaves
 * the connection as it is.
 */
export function batchWrites(model: ChannelModel): boolean {
  const connection = (model as unknown as Internals).connection;
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
