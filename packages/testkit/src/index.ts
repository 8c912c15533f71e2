export * from './redis-server.js';
export * from './free-port.js';
export * from './service-process.js';
export * from './control-plane-replica.js';
