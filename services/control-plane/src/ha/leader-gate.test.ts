import { afterEach, describe, expect, it } from 'vitest';
import { Metadata, Server, ServerCredentials, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, TandemError } from '@tandem/common';
import { RunServiceClient, RunServiceService, TrainerServiceClient, TrainerServiceService, type ListRunsResponse } from '@tandem/protocol';
import { trainerCredentialCheck } from '../api/trainer-service-grpc.js';
import { guardService, type LeaderGate } from './leader-gate.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.forceShutdown();
});

/** A RunService whose every method answers; guarded by a standby gate. */
async function standby(preflight?: (call: { metadata: Metadata }) => Promise<unknown>): Promise<RunServiceClient> {
  const gate: LeaderGate = {
    isLeader: () => false,
    leader: async () => ({ holder: 'cp-a', token: 3, acquiredAtMs: 0, httpUrl: 'http://10.0.0.1:8080', grpcAddress: '10.0.0.1:50051' }),
  };
  const served = (_call: unknown, cb: (e: null, r: ListRunsResponse) => void): void => cb(null, { runs: [] });
  const handlers = { submitRun: served, getRun: served, listRuns: served, cancelRun: served, scaleRun: served, watchRun: () => undefined };
  const server = new Server();
  server.addService(RunServiceService, guardService(RunServiceService, handlers, gate, new Set(['getRun', 'listRuns', 'watchRun']), preflight));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  servers.push(server);
  return new RunServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
}

function cancel(client: RunServiceClient, metadata = new Metadata()): Promise<ServiceError> {
  return new Promise((resolve, reject) =>
    client.cancelRun({ runId: 'r1', reason: '' }, metadata, (err) => (err ? resolve(err) : reject(new Error('a standby served a write')))),
  );
}

describe('leader gate on a standby', () => {
  it('serves reads, and refuses writes naming the leader', async () => {
    const client = await standby();
    await new Promise<void>((resolve, reject) => client.listRuns({ namespace: '' }, (err) => (err ? reject(err) : resolve())));
    const err = await cancel(client);
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toBe('this control plane is a standby: the leader is at http://10.0.0.1:8080 (gRPC 10.0.0.1:50051)');
    client.close();
  });

  it('authenticates before it names the leader', async () => {
    const client = await standby(async ({ metadata: m }) => {
      if (m.get('authorization')[0] !== 'Bearer good') throw new TandemError(ErrorCode.Unauthenticated, 'a valid bearer token is required');
    });
    const refused = await cancel(client);
    expect(refused.code).toBe(status.UNAUTHENTICATED);
    expect(refused.details).not.toContain('10.0.0.1');
    const withToken = new Metadata();
    withToken.set('authorization', 'Bearer good');
    expect((await cancel(client, withToken)).code).toBe(status.UNAVAILABLE);
    client.close();
  });

  it('checks a trainer call\'s run credential before it names the leader', async () => {
    const gate: LeaderGate = {
      isLeader: () => false,
      leader: async () => ({ holder: 'cp-a', token: 3, acquiredAtMs: 0, httpUrl: 'http://10.0.0.1:8080', grpcAddress: '10.0.0.1:50051' }),
    };
    const check = trainerCredentialCheck({ verify: async (runId, token) => runId === 'r1' && token === 'r1-secret' });
    const never = (): void => {
      throw new Error('a standby ran a trainer handler');
    };
    const handlers = { attach: never, pullBatch: never, ackBatch: never };
    const server = new Server();
    server.addService(TrainerServiceService, guardService(TrainerServiceService, handlers, gate, new Set(), (call) => check(call.metadata, (call.request as { runId?: string } | undefined)?.runId)));
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    servers.push(server);
    const client = new TrainerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    const pull = (token?: string): Promise<ServiceError> => {
      const metadata = new Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      return new Promise((resolve, reject) =>
        client.pullBatch({ runId: 'r1', step: 0, waitMs: 0 }, metadata, (err) => (err ? resolve(err) : reject(new Error('a standby served a pull')))),
      );
    };
    const none = await pull();
    expect(none.code).toBe(status.UNAUTHENTICATED);
    expect(none.details).not.toContain('10.0.0.1');
    const other = await pull('r2-secret');
    expect(other.code).toBe(status.PERMISSION_DENIED);
    expect(other.details).not.toContain('10.0.0.1');
    const own = await pull('r1-secret');
    expect(own.code).toBe(status.UNAVAILABLE);
    expect(own.details).toContain('the leader is at http://10.0.0.1:8080');
    client.close();
  });
});
