export * from './rollout-queue.js';
export * from './rollout-store.js';
export * from './prompt-queue.js';
export * from './prompt-group-codec.js';
export * from './queue-errors.js';
export { runKeys, type RunKeys } from './keys.js';
export type { RolloutRedis } from './lua-script.js';
export * from './synthetic-group.js';
