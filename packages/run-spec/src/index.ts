export * from './run-spec.js';
