export * from './run-spec.js';
export * from './rlrun.js';
