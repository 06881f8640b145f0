export * from './encoding.js';
export * from './topic.js';
export * from './pattern.js';
export * from './template.js';
export * from './uplink.js';
export * from './downlink.js';
export * from './rule-error.js';
export { SHORTSTR_MAX_BYTES } from './limits.js';
