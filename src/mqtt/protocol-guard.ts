import type { Client } from 'aedes';
import type { Duplex } from 'node:stream';
import { screenPackets } from './aedes-internals.js';
import type { TopicLimits } from './limits.js';
import { encodeConnackRefusal } from './packet-encoding.js';
import { PacketConformance, type ParsedPacket, type Violation } from './protocol-conformance.js';
import type { SubscribeSequences } from './subscribe-sequence.js';

export interface ProtocolGuardOptions {
  readonly limits: TopicLimits;
  readonly sequences: SubscribeSequences;
  /** Called once for a connection closed for a violation or a malformed packet, with the client id it gave if any. */
  onViolation(violation: Violation, clientId: string | undefined): void;
}

/**
 * Screens each packet of one connection before aedes handles it. At the first violation the
 * connection is closed (after a CONNACK where MQTT asks for one) and nothing more of it reaches
 * aedes; a malformed packet, which aedes closes the connection for, is reported the same way.
 * A SUBSCRIBE that repeats a filter is answered with a return code per filter.
 */
export function guardProtocol(client: Client, stream: Duplex, options: ProtocolGuardOptions): void {
  const conformance = new PacketConformance(options.limits);
  let refused = false;
  screenPackets(client, {
    pass(packet) {
      if (refused) return false;
      const parsed = packet as ParsedPacket;
      const violation = conformance.check(parsed);
      if (violation) {
        refused = true;
        options.onViolation(violation, parsed.cmd === 'connect' ? parsed.clientId : (client.id ?? undefined));
        if (violation.connackReturnCode === undefined) stream.destroy();
        else stream.write(encodeConnackRefusal(violation.connackReturnCode), () => stream.destroy());
        return false;
      }
      if (parsed.cmd === 'subscribe') options.sequences.prepare(client, parsed, stream);
      return true;
    },
    malformed(error) {
      if (refused) return;
      refused = true;
      options.onViolation({ limit: 'protocol_violation', reason: `malformed packet: ${error.message}` }, client.id ?? undefined);
    },
  });
}
