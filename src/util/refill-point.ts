/**
 * How many may still be in flight when a limit that was reached takes more again: a quarter of
 * it must be settled first (any release, under 4). RabbitMQ confirms a few publishes per frame,
 * so refilling at every confirm sent each frame's few waiting publishes in a write of their own;
 * refilled a quarter at a time they go out together (docs/performance.md). Used by the flow
 * controller's per-client limit and the confirm publisher's window.
 */
export function refillPoint(limit: number): number {
  return limit - Math.floor(limit / 4);
}
