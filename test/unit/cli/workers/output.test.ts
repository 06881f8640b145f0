import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { forwardLines } from '../../../../src/cli/workers/output.js';

test('forwardLines - copies whole lines however the chunks split them, and a last line without its newline at the end', async () => {
  const writes: string[] = [];
  const to = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push(chunk.toString());
      done();
    },
  });
  const from = new PassThrough();
  forwardLines(from, to);
  const long = `{"msg":"${'x'.repeat(100_000)}"}`;
  from.write('{"a":1}\n{"b"');
  from.write(':2}\n');
  from.write(long.slice(0, 70_000));
  from.write(`${long.slice(70_000)}\n`);
  from.end('{"last":true}');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(writes, ['{"a":1}\n', '{"b":2}\n', `${long}\n`, '{"last":true}\n']);
});
