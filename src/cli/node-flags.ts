/**
 * The flags node runs the bridge with: in the Dockerfile's ENTRYPOINT, the package.json scripts,
 * and wherever tests and the bench start a bridge process (test/unit/container.test.ts keeps them
 * the same). Not in the bin's first line: `#!/usr/bin/env -S node FLAGS` fails where env has no
 * `-S` (BusyBox, so Alpine; OpenBSD, NetBSD), so the installed command runs with node's default
 * unless NODE_OPTIONS carries the flags (docs/operations.md).
 *
 * `--max-semi-space-size=64` (MiB; node 20's default is 16): under load the bridge holds every
 * publish a device has in flight (aedes parses a whole socket read at once, and QoS 1/2 wait for
 * RabbitMQ's confirm), and V8 copies those survivors at each young-generation collection, whose
 * cost is about the same however large the young generation is. A larger one collects about
 * three times less often: for 100,000 messages each of uplink QoS 0, 1 and 2, 192-198 collections
 * pausing 1,329-1,370 ms in all became 62 pausing 424-572 ms, and the bridge's CPU per QoS 1
 * message went from 13.2-15.0 to 11.2-12.1 us; the overload scenario's peak RSS fell from 216-224
 * to 155-157 MiB and p99 latency was no worse; RSS just after 10,000 connections opened rose
 * from 244-254 to 282-285 MiB, their garbage not collected yet (docs/performance.md). Workers of
 * `run --workers` inherit the flags.
 */
export const BRIDGE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
