import { ErrorCode, parseOrThrow, TandemError, type FieldViolation } from '@tandem/common';
import { RLRunSpecSchema, type RunSpec } from '@tandem/run-spec';
import type { RunPhase } from '@tandem/rollout-queue';
import type { DeclaredRun, RunDeclarations } from '../runtime/run-runtime.js';
import { KubeApiError, type KubeApi } from './kube-client.js';
import { RLRUN, type KubeObject } from './resources.js';
import { CANCEL_ANNOTATION } from './rlrun-reconciler.js';
import type { RLRunStatus } from './rlrun-status.js';

/**
 * The API façade of the kubernetes runtime: `POST /v1/runs` and `SubmitRun`
 * create an RLRun, cancel sets its cancel annotation, scale patches
 * `spec.generator.replicas`, and runs the reconciler has not accepted yet
 * are read back from their RLRun. Any replica can serve these calls; only
 * the leader reconciles.
 */
export class RLRunDeclarations implements RunDeclarations {
  private readonly api: KubeApi;
  private readonly namespace: string;

  constructor(deps: { api: KubeApi; namespace: string }) {
    this.api = deps.api;
    this.namespace = deps.namespace;
  }

  parseSpec(input: unknown): RunSpec {
    return parseOrThrow(RLRunSpecSchema, input, 'run spec');
  }

  async declare(id: string, spec: RunSpec): Promise<void> {
    await this.call(id, () =>
      this.api.create(RLRUN, this.namespace, {
        metadata: { name: id, namespace: this.namespace, labels: { 'tandem.dev/submitted-through': 'api' } },
        spec,
      }),
    );
  }

  async get(id: string): Promise<DeclaredRun | undefined> {
    const o = await this.call(id, () => this.api.get(RLRUN, this.namespace, id));
    return o ? toDeclared(o) : undefined;
  }

  async list(): Promise<DeclaredRun[]> {
    const list = await this.call('', () => this.api.list(RLRUN, this.namespace));
    return list.items.map(toDeclared);
  }

  async cancel(id: string, reason: string): Promise<void> {
    await this.call(id, () => this.api.mergePatch(RLRUN, this.namespace, id, { metadata: { annotations: { [CANCEL_ANNOTATION]: reason } } }));
  }

  async scale(id: string, generators: number): Promise<void> {
    await this.call(id, () => this.api.mergePatch(RLRUN, this.namespace, id, { spec: { generator: { replicas: generators } } }));
  }

  private async call<T>(id: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toTandemError(err, id);
    }
  }
}

/**
 * Kubernetes API errors as Tandem errors, in one place: 404 NOT_FOUND,
 * 409 ALREADY_EXISTS (create) or ABORTED (a write lost a race: retry),
 * 422 INVALID_ARGUMENT naming each field (`spec.x` → `x`,
 * `metadata.name` → `runId`), 403 PERMISSION_DENIED, everything else
 * UNAVAILABLE (retryable: the apiserver is down or overloaded).
 */
export function toTandemError(err: unknown, id: string): TandemError {
  if (!(err instanceof KubeApiError)) return TandemError.from(err);
  switch (err.code) {
    case 404:
      return new TandemError(ErrorCode.NotFound, `run ${id} not found`, { cause: err });
    case 409:
      return err.reason === 'AlreadyExists'
        ? new TandemError(ErrorCode.AlreadyExists, `run ${id} already exists`, { cause: err })
        : new TandemError(ErrorCode.Aborted, `run ${id} changed concurrently; retry`, { cause: err });
    case 400:
    case 422: {
      const causes = err.status?.details?.causes ?? [];
      const violations: FieldViolation[] = causes.length
        ? causes.map((c) => ({ path: fieldPath(c.field ?? ''), message: c.message }))
        : [{ path: '', message: err.message }];
      return TandemError.invalid('run', violations);
    }
    case 403:
      return new TandemError(ErrorCode.PermissionDenied, `the control plane may not do this in Kubernetes: ${err.message}`, { cause: err });
    default:
      return new TandemError(ErrorCode.Unavailable, `Kubernetes API unavailable: ${err.message}`, { cause: err });
  }
}

function fieldPath(field: string): string {
  if (field === 'metadata.name') return 'runId';
  return field.replace(/^spec\./, '');
}

const API_PHASES: ReadonlySet<string> = new Set(['Pending', 'Running', 'Succeeded', 'Failed', 'Cancelled']);

function toDeclared(o: KubeObject): DeclaredRun {
  const status = (o.status ?? {}) as RLRunStatus;
  const parsed = RLRunSpecSchema.safeParse(o.spec);
  // An RLRun written with kubectl may be invalid; it is shown as written,
  // with the reconciler's verdict (phase Failed, reason InvalidSpec).
  const spec = (parsed.success ? parsed.data : o.spec) as RunSpec;
  const cancelReason = o.metadata.annotations?.[CANCEL_ANNOTATION];
  const phase = status.phase && API_PHASES.has(status.phase) ? (status.phase as RunPhase) : status.phase ? 'Running' : undefined;
  return {
    id: o.metadata.name as string,
    spec,
    ...(cancelReason !== undefined ? { cancelReason } : {}),
    ...(phase ? { phase } : {}),
    ...(status.message ? { message: status.message } : {}),
    createdAt: o.metadata.creationTimestamp ?? '',
  };
}
