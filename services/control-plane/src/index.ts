export * from './control-plane.js';
export * from './config.js';
export * from './metrics/control-plane-metrics.js';
export * from './runs/run-manager.js';
export * from './runs/prompt-source.js';
export * from './broker/trainer-broker.js';
export * from './broker/trainer-sessions.js';
