/** The few packets the bridge writes itself, past aedes. */

/** A SUBACK packet [MQTT-3.9]. */
export function encodeSuback(messageId: number, returnCodes: readonly number[]): Buffer {
  return Buffer.concat([Buffer.from([0x90]), encodeRemainingLength(2 + returnCodes.length), Buffer.from([messageId >> 8, messageId & 0xff, ...returnCodes])]);
}

/** A CONNACK packet [MQTT-3.2] that refuses the connection with this return code. */
export function encodeConnackRefusal(returnCode: number): Buffer {
  return Buffer.from([0x20, 0x02, 0x00, returnCode]);
}

/** The variable-length remaining length of a fixed header [MQTT-2.2.3]. */
export function encodeRemainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}
