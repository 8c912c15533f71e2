export * from './errors.js';
export * from './validation.js';
export * from './logger.js';
export * from './clock.js';
export * from './parent-watch.js';
