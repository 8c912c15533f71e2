import type { z } from 'zod';
import { TandemError, type FieldViolation } from './errors.js';

/** Turns zod issues into field violations with dotted paths (`a.b[2].c`). */
export function zodViolations(error: z.ZodError): FieldViolation[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

/** Dotted path of a field, with array indices in brackets. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/**
 * Parses `input` with `schema`, or throws INVALID_ARGUMENT naming every bad
 * field. `what` names the thing in the message ("run spec", "config").
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw TandemError.invalid(what, zodViolations(result.error));
  return result.data;
}
