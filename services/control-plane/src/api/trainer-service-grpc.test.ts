import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Server, ServerCredentials, credentials, type ServiceError } from '@grpc/grpc-js';
import { BatchState, PullBatchResponse, TrainerServiceClient, type TrainerServiceServer } from '@tandem/protocol';
import { encodePullBatchResponse, serializePullBatchResponse, trainerServiceDefinition } from './trainer-service-grpc.js';

const generated = (r: PullBatchResponse): Buffer => Buffer.from(PullBatchResponse.encode(r).finish());

const response = fc.record({
  runId: fc.oneof(fc.constant(''), fc.string(), fc.string({ unit: 'binary' })),
  step: fc.oneof(fc.constant(0), fc.nat(), fc.maxSafeInteger(), fc.integer({ min: -5, max: -1 })),
  state: fc.constantFrom(
    BatchState.BATCH_STATE_UNSPECIFIED,
    BatchState.BATCH_STATE_READY,
    BatchState.BATCH_STATE_NOT_READY,
    BatchState.BATCH_STATE_RUN_ENDED,
  ),
  groups: fc.array(fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)), { maxLength: 6 }),
  droppedStale: fc.oneof(fc.constant(0), fc.nat({ max: 0xffffffff })),
  reserved: fc.boolean(),
});

describe('encodePullBatchResponse', () => {
  it('is byte-identical to the generated serializer', () => {
    fc.assert(
      fc.property(response, (r) => {
        expect(encodePullBatchResponse(r).equals(generated(r))).toBe(true);
      }),
      { numRuns: 500, seed: 11 },
    );
  });

  it('round-trips a batch of 64 KiB groups and is what the served definition uses', () => {
    const groups = Array.from({ length: 4 }, (_, i) => Buffer.alloc(65_600, i + 1));
    const r: PullBatchResponse = { runId: 'run-1', step: 12, state: BatchState.BATCH_STATE_READY, groups, droppedStale: 1, reserved: true };
    const wire = encodePullBatchResponse(r);
    expect(trainerServiceDefinition.pullBatch.responseSerialize).toBe(serializePullBatchResponse);
    expect(serializePullBatchResponse(r).equals(wire)).toBe(true);
    expect(wire.equals(generated(r))).toBe(true);
    const decoded = PullBatchResponse.decode(wire);
    expect({ ...decoded, groups: [] }).toEqual({ ...r, groups: [] });
    expect(decoded.groups.map((g, i) => g.equals(groups[i]!))).toEqual([true, true, true, true]);
  });
});

describe('serializePullBatchResponse over a real gRPC server', () => {
  it('delivers every response intact although one serialization buffer is reused', async () => {
    // Distinct, large responses answered in the same tick: grpc-js must have
    // copied each one out of the shared buffer before serializing the next.
    const server = new Server();
    const pending: Array<() => void> = [];
    const impl: TrainerServiceServer = {
      pullBatch(call, callback) {
        const step = call.request.step;
        const groups = Array.from({ length: 3 }, (_, i) => Buffer.alloc(200_000 + step * 1000 + i, (step * 7 + i) % 251));
        pending.push(() => callback(null, { runId: 'r', step, state: BatchState.BATCH_STATE_READY, groups, droppedStale: 0, reserved: false }));
        if (pending.length === 12) for (const answer of pending.splice(0)) answer();
      },
      ackBatch(_call, callback) {
        callback(null, { policyVersion: 0, groupsTrained: 0, duplicate: false });
      },
      attach(call) {
        call.end();
      },
    };
    server.addService(trainerServiceDefinition, impl);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const client = new TrainerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    try {
      const responses = await Promise.all(
        Array.from(
          { length: 12 },
          (_, step) =>
            new Promise<PullBatchResponse>((resolve, reject) =>
              client.pullBatch({ runId: 'r', step, waitMs: 0 }, (err: ServiceError | null, res: PullBatchResponse) => (err ? reject(err) : resolve(res))),
            ),
        ),
      );
      responses.forEach((res, step) => {
        expect(res.step).toBe(step);
        res.groups.forEach((g, i) => {
          expect(g.byteLength).toBe(200_000 + step * 1000 + i);
          const fill = (step * 7 + i) % 251;
          expect(g.every((b) => b === fill)).toBe(true);
        });
      });
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
