export * from './demo/run-demo.js';
export * from './demo/run-summary.js';
export * from './demo/demo-spec.js';
