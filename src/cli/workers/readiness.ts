import type { Readiness } from '../../observability/http-server.js';
import type { WorkerState } from '../../observability/metrics.js';

/** What the primary knows of one worker slot when `/readyz` is asked. */
export interface WorkerReport {
  readonly slot: number;
  readonly state: WorkerState;
  /** A running worker's own readiness; null when it did not answer in time. */
  readonly answer?: Readiness | null;
  /** Why a restarting worker died (`code 1`, `signal SIGKILL`). */
  readonly died?: string;
}

/**
 * `/readyz` of `run --workers N`: ready when the primary runs and every worker runs and is ready;
 * else each reason, named by its worker (`worker 2: amqp: connecting`). What RabbitMQ refuses is
 * listed once however many workers report it.
 */
export function combineReadiness(primaryRunning: boolean, workers: readonly WorkerReport[]): Readiness {
  const reasons: string[] = primaryRunning ? [] : ['primary: stopping'];
  const degraded = new Set<string>();
  for (const worker of workers) {
    const name = `worker ${worker.slot}`;
    if (worker.state === 'restarting') reasons.push(`${name}: restarting (it died: ${worker.died ?? 'unknown'})`);
    else if (worker.state !== 'running') reasons.push(`${name}: ${worker.state}`);
    else if (worker.answer === null || worker.answer === undefined) reasons.push(`${name}: no answer`);
    else {
      reasons.push(...worker.answer.reasons.map((reason) => `${name}: ${reason}`));
      for (const summary of worker.answer.degraded) degraded.add(summary);
    }
  }
  return { ready: reasons.length === 0, reasons, degraded: [...degraded] };
}
