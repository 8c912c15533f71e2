import type { KubeStatus } from '../resources.js';
import type { FieldError } from './schema-validator.js';

/** An error the fake apiserver answers with, carrying a metav1.Status body like the real one. */
export class ApiStatusError extends Error {
  readonly status: KubeStatus;
  constructor(status: KubeStatus) {
    super(status.message);
    this.status = status;
  }
}

/** The resource as the apiserver names it in messages (`rlruns.tandem.dev`, `pods`). */
export interface Named {
  group: string;
  plural: string;
  kind: string;
}

function qualified(t: Named): string {
  return t.group ? `${t.plural}.${t.group}` : t.plural;
}

function status(code: number, reason: string, message: string, details?: KubeStatus['details']): ApiStatusError {
  return new ApiStatusError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) });
}

export const apiErrors = {
  notFound: (t: Named, name: string) => status(404, 'NotFound', `${qualified(t)} "${name}" not found`, { name, group: t.group, kind: t.plural }),
  alreadyExists: (t: Named, name: string) => status(409, 'AlreadyExists', `${qualified(t)} "${name}" already exists`, { name, group: t.group, kind: t.plural }),
  conflict: (t: Named, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
    status(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(t)} "${name}": ${why}`, { name, group: t.group, kind: t.plural }),
  applyConflict: (t: Named, name: string, conflicts: Array<{ manager: string; field: string }>) =>
    status(
      409,
      'Conflict',
      `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: ${conflicts.map((c) => `conflict with "${c.manager}": ${c.field}`).join(', ')}`,
      { name, group: t.group, kind: t.plural, causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}"`, field: c.field })) },
    ),
  invalid: (t: Named, name: string, errors: FieldError[]) => {
    const parts = errors.map((e) => `${e.field}: ${e.message}`);
    const summary = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
    const kindGroup = t.group ? `${t.kind}.${t.group}` : t.kind;
    return status(422, 'Invalid', `${kindGroup} "${name}" is invalid: ${summary}`, {
      name,
      group: t.group,
      kind: t.kind,
      causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
    });
  },
  badRequest: (message: string) => status(400, 'BadRequest', message),
  gone: (requested: string, oldest: number) => status(410, 'Expired', `too old resource version: ${requested} (${oldest})`),
  unsupportedMediaType: (contentType: string) =>
    status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format (${contentType}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`),
  methodNotAllowed: (method: string) => status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`),
  internal: (message: string) => status(500, 'InternalError', `Internal error occurred: ${message}`),
  unavailable: (message: string) => status(503, 'ServiceUnavailable', message),
};
