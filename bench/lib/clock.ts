/**
 * The bench's one clock, in milliseconds: CLOCK_MONOTONIC (`process.hrtime`), which every process
 * on the machine reads alike, so that a time stamped by the load generator's process can be
 * compared with one read by the consumer's.
 *
 * `performance.timeOrigin + performance.now()` cannot be compared across processes: its origin is
 * the wall clock when the process started, and its progress the monotonic clock. Two processes
 * started at different times disagree by however far the wall clock moved against the monotonic
 * one in between (NTP stepping or slewing it, a virtual machine paused): the load generator (a
 * long-lived process) and the consumer disagreed by more than the latency itself, and every
 * delivery latency came out negative, clamped to the histogram's 0.001 ms.
 */
export function benchClockMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
