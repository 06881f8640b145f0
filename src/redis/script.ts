import type { Redis } from 'ioredis';

/** A value a script is given. */
export type ScriptArgument = string | number | Buffer;

/** A Lua script on one connection, run atomically by Redis. */
export interface RedisScript {
  /** Runs it; strings in the reply come back as strings. */
  run(keys: readonly string[], args: readonly ScriptArgument[]): Promise<unknown>;
  /** Runs it; strings in the reply come back as Buffers (for binary values). */
  runBuffer(keys: readonly string[], args: readonly ScriptArgument[]): Promise<unknown>;
}

type Runner = (numberOfKeys: number, ...keysAndArgs: ScriptArgument[]) => Promise<unknown>;

/**
 * Defines a script on a connection (ioredis sends EVALSHA, and the script itself when Redis
 * does not know it: after a restart of Redis too). Its KEYS get the connection's key prefix; a
 * script that builds key names itself is given the prefix as an argument.
 */
export function defineScript(redis: Redis, name: string, lua: string): RedisScript {
  const commands = redis as unknown as Record<string, Runner | undefined>;
  if (commands[name] === undefined) redis.defineCommand(name, { lua });
  const run = commands[name]!.bind(redis);
  const runBuffer = commands[`${name}Buffer`]!.bind(redis);
  return {
    run: (keys, args) => run(keys.length, ...keys, ...args),
    runBuffer: (keys, args) => runBuffer(keys.length, ...keys, ...args),
  };
}
