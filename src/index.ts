import './quiet-debug.js'; // first: before anything loads `debug`
export { Bridge, createBridge, type BridgeOptions, type BridgeState, type ReloadResult } from './bridge.js';
export { loadConfigFile, loadConfigText, loadLocatedConfigFile, type ConfigLocator, type LoadOptions, type LocatedConfig } from './config/load.js';
export { configSchema, type BridgeConfig, type BridgeConfigInput } from './config/schema.js';
export * from './errors.js';
export { UplinkResolver, type UplinkPublish, type UplinkRoute } from './mapping/uplink.js';
export { createLogger, silentLogger } from './observability/logger.js';
export type { RunningListener } from './mqtt/listeners/listener.js';
