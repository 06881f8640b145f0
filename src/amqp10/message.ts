import type { Message } from 'rhea';
import type { AddressDestination } from '../mapping/destination.js';
import type { InboundDelivery, OutboundMessage } from '../ports.js';
import { bodyBytes, dataSection } from './rhea-internals.js';

/** A message to an address: the only kind the AMQP 1.0 back end is given (the configuration makes sure). */
export type AddressMessage = OutboundMessage & AddressDestination;

/**
 * The AMQP 1.0 message for an uplink publish [AMQP 1.0, 3.2]: the payload as one data section
 * (exact bytes), the headers as application-properties, message-id, creation-time, subject and
 * the rule's properties; `durable` in the header for QoS 1/2. (The link's target is the address.)
 */
export function toAmqp10Message(message: AddressMessage): Message {
  const { properties } = message;
  const amqp: Message = {
    body: dataSection(message.content),
    message_id: message.messageId,
    creation_time: new Date(message.receivedAt),
    application_properties: { ...message.headers },
    durable: properties.persistent,
  };
  if (message.subject !== undefined) amqp.subject = message.subject;
  if (properties.contentType !== undefined) amqp.content_type = properties.contentType;
  if (properties.contentEncoding !== undefined) amqp.content_encoding = properties.contentEncoding;
  if (properties.correlationId !== undefined) amqp.correlation_id = properties.correlationId;
  if (properties.replyTo !== undefined) amqp.reply_to = properties.replyTo;
  if (properties.priority !== undefined) amqp.priority = properties.priority;
  if (properties.expiration !== undefined) amqp.ttl = Number(properties.expiration);
  return amqp;
}

/** A received message as the downlink takes it, or null when its body is not bytes or a string. */
export function fromAmqp10Message(address: string, message: Message): InboundDelivery | null {
  const content = bodyBytes(message.body);
  if (!content) return null;
  const subject = typeof message.subject === 'string' ? message.subject : undefined;
  return { address, subject, content, headers: message.application_properties as Record<string, unknown> | undefined };
}
