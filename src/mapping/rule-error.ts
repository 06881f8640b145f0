import { MappingError } from '../errors.js';

/** A rule that failed to compile: which rule (by index) and which of its fields. */
export class RuleError extends MappingError {
  readonly ruleIndex: number;

  constructor(ruleIndex: number, cause: MappingError) {
    super(cause.code as 'BRIDGE_ERR_PATTERN_INVALID' | 'BRIDGE_ERR_TEMPLATE_INVALID', cause.field, cause.message);
    this.ruleIndex = ruleIndex;
  }
}
