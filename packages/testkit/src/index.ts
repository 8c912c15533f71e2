export * from './redis-server.js';
export * from './free-port.js';
