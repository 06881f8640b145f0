import assert from 'node:assert/strict';
import { MappingError, RenderError } from '../../src/errors.js';

/** Asserts that `run` throws a MappingError with exactly this code, field and message; returns it. */
export function assertMappingError(run: () => unknown, code: MappingError['code'], field: string, message: string): MappingError {
  let thrown: MappingError | undefined;
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof MappingError, `expected MappingError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.field, field);
    assert.equal(error.message, message);
    thrown = error;
    return true;
  });
  return thrown!;
}

/** Asserts that `run` throws a RenderError (BRIDGE_ERR_RENDER) with exactly this message. */
export function assertRenderError(run: () => unknown, message: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof RenderError, `expected RenderError, got ${String(error)}`);
    assert.equal(error.code, 'BRIDGE_ERR_RENDER');
    assert.equal(error.message, message);
    return true;
  });
}
