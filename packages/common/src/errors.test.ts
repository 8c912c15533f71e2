import { describe, expect, it } from 'vitest';
import { ErrorCode, TandemError } from './errors.js';

/** ioredis's error for a command that outlived its reconnect attempts (same name, no dependency on ioredis here). */
class MaxRetriesPerRequestError extends Error {
  override get name(): string {
    return 'MaxRetriesPerRequestError';
  }
}

describe('TandemError.from', () => {
  it('keeps a TandemError and makes an unknown error INTERNAL', () => {
    const e = new TandemError(ErrorCode.NotFound, 'no such run');
    expect(TandemError.from(e)).toBe(e);
    expect(TandemError.from(new Error('boom')).code).toBe(ErrorCode.Internal);
    expect(TandemError.from('boom')).toMatchObject({ code: ErrorCode.Internal, message: 'boom' });
  });

  it('makes a lost connection UNAVAILABLE (retryable), keeping the message and the cause', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    const retries = new MaxRetriesPerRequestError('Reached the max retries per request limit (which is 20).');
    for (const err of [refused, retries, new Error('Connection is closed.')]) {
      const e = TandemError.from(err);
      expect(e).toMatchObject({ code: ErrorCode.Unavailable, message: err.message, retryable: true });
      expect(e.cause).toBe(err);
    }
  });
});
