import { fork, type ChildProcess } from 'node:child_process';
import type { Percentiles } from './stats.js';

export type LoadCommand =
  | { kind: 'amqp-publish'; amqpUrl: string; publishers: number; perPublisher: number; confirm: boolean; exchange: string; routingPrefix: string; payloadBytes: number; window: number }
  | { kind: 'publish'; url: string; clients: number; perClient: number; qos: 0 | 1 | 2; topicPrefix: string; payloadBytes: number; window: number }
  | { kind: 'paced'; url: string; clients: number; rate: number; seconds: number; qos: 0 | 1 | 2; topicPrefix: string; payloadBytes: number }
  | { kind: 'subscribe'; url: string; subscribers: number; qos: 0 | 1 | 2; topicPrefix: string; clientPrefix: string; clean: boolean }
  | { kind: 'await'; expected: number; timeoutMs: number }
  | { kind: 'idle'; url: string; connections: number; keepaliveSeconds: number; sources: string[] }
  | { kind: 'close' };

export type LoadResult =
  | { kind: 'published'; sent: number; startedAt: number; ms: number }
  | { kind: 'paced'; sent: number; puback: Percentiles; seconds: number }
  | { kind: 'subscribed' }
  | { kind: 'delivered'; distinct: number; duplicated: number; lastAt: number }
  | { kind: 'idle'; connected: number; failed: number; seconds: number }
  | { kind: 'closed' }
  | { kind: 'error'; message: string };

/** The load generator process (bench/load-worker.ts): one command at a time. */
export class LoadGenerator {
  private constructor(private readonly child: ChildProcess) {}

  static start(): LoadGenerator {
    const child = fork(new URL('../load-worker.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    process.on('exit', () => child.kill('SIGKILL'));
    return new LoadGenerator(child);
  }

  run<K extends LoadResult['kind']>(command: LoadCommand, expect: K): Promise<Extract<LoadResult, { kind: K }>> {
    return new Promise((resolve, reject) => {
      this.child.once('message', (result: LoadResult) => {
        if (result.kind === 'error') reject(new Error(`load generator: ${result.message}`));
        else if (result.kind !== expect) reject(new Error(`load generator answered ${result.kind}, not ${expect}`));
        else resolve(result as Extract<LoadResult, { kind: K }>);
      });
      this.child.send(command);
    });
  }

  stop(): void {
    this.child.kill();
  }
}
