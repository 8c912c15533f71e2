import type { RunManager, RunView, SubmitRunInput } from '../runs/run-manager.js';
import { authorize, allows, type Access, type Principal } from './principal.js';

/**
 * The run operations as a caller may do them: each checks the caller's
 * namespaces and role first, then calls the {@link RunManager}. Both API
 * surfaces go through here, so every operation is authorized in one place.
 * A run in a namespace the caller may not see is PERMISSION_DENIED (not
 * NOT_FOUND), naming the namespace.
 */
export class RunAccess {
  private readonly runs: RunManager;

  constructor(runs: RunManager) {
    this.runs = runs;
  }

  async submit(p: Principal, input: SubmitRunInput): Promise<RunView> {
    authorize(p, input.namespace || this.defaultNamespace(), 'write', 'submit runs');
    return this.runs.submit(input);
  }

  async get(p: Principal, id: string): Promise<RunView> {
    return this.check(p, id, 'read', 'read runs');
  }

  /** Runs of the namespaces the caller may read (of `namespace` only, when given). */
  async list(p: Principal, namespace?: string): Promise<RunView[]> {
    if (namespace) authorize(p, namespace, 'read', 'list runs');
    const all = await this.runs.list();
    return all.filter((v) => (!namespace || v.namespace === namespace) && allows(p, v.namespace, 'read'));
  }

  async cancel(p: Principal, id: string, reason: string): Promise<RunView> {
    await this.check(p, id, 'write', 'cancel runs');
    return this.runs.cancel(id, reason);
  }

  async scale(p: Principal, id: string, generators: number): Promise<RunView> {
    await this.check(p, id, 'write', 'scale runs');
    return this.runs.scale(id, generators);
  }

  /** Checks read access, then streams the run's status (NOT_FOUND / PERMISSION_DENIED before the first event). */
  async watch(p: Principal, id: string, signal: AbortSignal): Promise<AsyncGenerator<RunView>> {
    await this.check(p, id, 'read', 'watch runs');
    return this.runs.watch(id, signal);
  }

  /** The run, after checking `access` to its namespace (NOT_FOUND when it does not exist). */
  async check(p: Principal, id: string, access: Access, what: string): Promise<RunView> {
    const view = await this.runs.get(id);
    authorize(p, view.namespace, access, what);
    return view;
  }

  private defaultNamespace(): string {
    return this.runs.defaultNamespace;
  }
}
