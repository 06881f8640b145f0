/** One PUBLISH from a device (or its will), as the rest of the bridge sees it. */
export interface DevicePublish {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  readonly clientId: string;
  readonly username: string | undefined;
}

/**
 * Takes device publishes onward (to AMQP). `done(null)` means the device may be
 * acknowledged (PUBACK for QoS 1, PUBREC for QoS 2); `done(error)` means it must not be,
 * and the device is disconnected so that it retransmits.
 */
export interface PublishHandler {
  onPublish(publish: DevicePublish, done: (error: Error | null) => void): void;
}
