export * from './config.js';
export * from './worker-process.js';
export * from './rollout-worker.js';
export * from './generator-pool.js';
export * from './vllm-client.js';
export * from './backoff.js';
export * from './rewards/index.js';
