import { ErrorCode, TandemError } from '@tandem/common';

/** A usage error: exit code 2 with the usage text. */
export class UsageError extends TandemError {
  constructor(message: string) {
    super(ErrorCode.InvalidArgument, message);
  }
}

/** Parses an integer flag in [min, max], naming the flag when it is wrong. */
export function intOption(flag: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Parses a number flag in [min, max]. */
export function numberOption(flag: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}
