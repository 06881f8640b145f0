/**
 * The flow controller's own cost per publish: `node --import tsx bench/flow-controller.ts [--quick] [MODULE]`.
 *
 * Drives one FlowController (the default limits: 10,000 pending, 100 in flight per client) the
 * way the uplink scenario of the bench does: 10 clients keep 500 publishes each outstanding, so
 * most wait for their client's turn, and RabbitMQ's confirms come back oldest first, 200 at a
 * time. No sockets, no timers: the time is the controller's (and this loop's) alone. MODULE, a
 * path to another build of flow-controller.js, compares two versions in the same run. Prints
 * nanoseconds per publish (admission and release), the median of 5 runs. Speed is never asserted.
 */
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../src/observability/logger.js';
import { Fifo } from '../src/util/fifo.js';
import type { Admission, FlowController } from '../src/flow/flow-controller.js';

const quick = process.argv.includes('--quick');
const modulePath = process.argv.slice(2).find((argument) => !argument.startsWith('--'));
const PUBLISHES = quick ? 100_000 : 2_000_000;
const CLIENTS = 10;
const OUTSTANDING_PER_CLIENT = 500;
const CONFIRMS_PER_BATCH = 200;

type FlowControllerClass = typeof FlowController;

async function load(): Promise<FlowControllerClass> {
  const module = (await import(modulePath ? pathToFileURL(modulePath).href : '../src/flow/flow-controller.js')) as { FlowController: FlowControllerClass };
  return module.FlowController;
}

function run(Controller: FlowControllerClass): number {
  const flow = new Controller({ maxPendingMessages: 10_000, maxPendingBytes: 64 * 1024 * 1024, maxInflightPerClient: 100, qos0Overflow: 'drop', publishTimeoutMs: 60_000, logger: silentLogger() });
  flow.setBrokerState('connected');
  const confirms = new Fifo<() => void>();
  const outstanding = new Array<number>(CLIENTS).fill(0);
  let submitted = 0;
  let admitted = 0;
  const submit = (client: number, receivedAt: number) => {
    outstanding[client]!++;
    const admission: Admission = {
      clientId: `device-${client}`,
      bytes: 64,
      qos: 1,
      receivedAt,
      admitted(release) {
        admitted++;
        confirms.push(() => {
          release();
          outstanding[client]!--;
        });
      },
      refused(reason) {
        throw new Error(`refused: ${reason}`);
      },
    };
    flow.admit(admission);
  };
  const started = process.hrtime.bigint();
  while (admitted < PUBLISHES) {
    const now = Date.now();
    for (let client = 0; client < CLIENTS; client++) {
      while (outstanding[client]! < OUTSTANDING_PER_CLIENT && submitted < PUBLISHES) {
        submit(client, now);
        submitted++;
      }
    }
    for (let confirmed = 0; confirmed < CONFIRMS_PER_BATCH && confirms.length > 0; confirmed++) confirms.shift()!();
  }
  while (confirms.length > 0) confirms.shift()!();
  const elapsed = Number(process.hrtime.bigint() - started);
  if (flow.pendingMessages !== 0 || flow.waiting !== 0) throw new Error('publishes left over');
  flow.close();
  return elapsed / PUBLISHES;
}

const Controller = await load();
run(Controller); // warm-up: the first run pays for compilation
const runs = Array.from({ length: 5 }, () => run(Controller)).sort((a, b) => a - b);
console.log(JSON.stringify({ bench: 'flow-controller', module: modulePath ?? 'src/flow/flow-controller.ts', publishes: PUBLISHES, nsPerPublish: Math.round(runs[2]!), runs: runs.map(Math.round) }));
