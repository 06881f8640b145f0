import { createInterface } from 'node:readline';

/**
 * Copies what a worker writes to the primary's stream one whole line at a time, so that lines of
 * several workers (and the primary's own) never mix even when one is longer than a pipe writes
 * at once. A last line without its newline is copied when the worker's stream ends.
 */
export function forwardLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream): void {
  createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => to.write(`${line}\n`));
}
