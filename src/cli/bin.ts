#!/usr/bin/env node
import '../quiet-debug.js'; // first: before anything loads `debug`
import { main } from './main.js';

main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin }).then(
  (code) => {
    process.exitCode = code;
    // `run` leaves nothing worth waiting for once the bridge stopped.
    if (process.argv[2] === 'run') setImmediate(() => process.exit(code));
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
