import { runWorker } from './worker.js';

// The module node:cluster runs in each worker of `run --workers N` (see primary.ts).

// The primary tells each worker when to reload and stop: a Ctrl-C or a hangup of the terminal
// reaches the whole process group, and must not stop (or, SIGHUP's default, kill) a worker on its own.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});

runWorker(
  { stdout: process.stdout, stderr: process.stderr, env: process.env },
  {
    send: (message) => {
      // The primary may be gone (the worker then stops: 'disconnect').
      if (process.connected) process.send?.(message);
    },
    onMessage: (listener) => process.on('message', listener),
    onStop: (listener) => {
      process.once('disconnect', listener);
      process.once('SIGTERM', listener);
    },
  },
).then(
  (code) => setImmediate(() => process.exit(code)),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
