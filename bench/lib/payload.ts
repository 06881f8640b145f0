/** Payload layout: message id (uint32), intended send time (float64, ms since the epoch), padding. */
export function payloadFor(id: number, sentAt: number, bytes: number): Buffer {
  const payload = Buffer.alloc(Math.max(12, bytes), 0x61);
  payload.writeUInt32BE(id, 0);
  payload.writeDoubleBE(sentAt, 4);
  return payload;
}
