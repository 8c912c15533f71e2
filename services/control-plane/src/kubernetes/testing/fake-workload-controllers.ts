import { randomBytes } from 'node:crypto';
import type { KubeObject } from '../resources.js';
import type { KindInfo } from './api-catalog.js';
import type { FakeApiServer } from './fake-apiserver.js';
import type { ObjectStore } from './object-store.js';

/**
 * Stand-ins for the controller-manager and the kubelet, so that workloads
 * the Tandem controller creates get pods: StatefulSets make `<name>-<i>`
 * pods, Deployments make pods directly (no ReplicaSets), Indexed Jobs make
 * one pod per index and fail after `backoffLimit` pod failures; pods become
 * Running and Ready at once unless a test says otherwise. Tests crash
 * containers, fail pods and flip readiness through the methods below.
 *
 * This is scaffolding for a contract test of the Tandem controller. It does
 * not schedule, does not model nodes, GPUs, images, probes, eviction,
 * rolling updates or Kueue, and says nothing about how a real cluster
 * behaves under load.
 */
export class FakeWorkloadControllers {
  private readonly store: ObjectStore;
  private readonly k: { sts: KindInfo; deploy: KindInfo; job: KindInfo; pod: KindInfo };
  private unsubscribe: (() => void) | undefined;
  private scheduled = false;
  private readonly notReady = new Set<string>();
  /** Turn off to keep new pods un-Ready until {@link setReady}. */
  autoReady = true;

  constructor(api: FakeApiServer) {
    this.store = api.store;
    this.k = { sts: api.kind('apps', 'statefulsets'), deploy: api.kind('apps', 'deployments'), job: api.kind('batch', 'jobs'), pod: api.kind('', 'pods') };
  }

  start(): void {
    this.unsubscribe = this.store.subscribe(() => this.schedule());
    this.schedule();
  }

  stop(): void {
    this.unsubscribe?.();
  }

  /** Pods now (tests). */
  pods(namespace: string, labelSelector?: Record<string, string>): KubeObject[] {
    return this.store
      .list(this.k.pod, namespace)
      .items.filter((p) => Object.entries(labelSelector ?? {}).every(([k, v]) => p.metadata.labels?.[k] === v));
  }

  /** Marks a pod Ready or not (the readiness probe's verdict). */
  setReady(namespace: string, name: string, ready: boolean): void {
    const key = `${namespace}/${name}`;
    if (ready) this.notReady.delete(key);
    else this.notReady.add(key);
    const pod = this.store.mustGet(this.k.pod, namespace, name);
    this.writePodStatus(pod, ready ? 'Running' : 'Running', ready, restarts(pod));
  }

  /** A container exited and the kubelet restarted it in place (restartCount + 1). */
  crashContainer(namespace: string, name: string): void {
    const pod = this.store.mustGet(this.k.pod, namespace, name);
    this.writePodStatus(pod, 'Running', !this.notReady.has(`${namespace}/${name}`), restarts(pod) + 1);
  }

  /** A pod of a Job ends with a failure (restartPolicy Never). */
  failPod(namespace: string, name: string): void {
    const pod = this.store.mustGet(this.k.pod, namespace, name);
    this.writePodStatus(pod, 'Failed', false, restarts(pod));
  }

  /** A pod of a Job ends successfully. */
  succeedPod(namespace: string, name: string): void {
    const pod = this.store.mustGet(this.k.pod, namespace, name);
    this.writePodStatus(pod, 'Succeeded', false, restarts(pod));
  }

  private schedule(): void {
    if (this.scheduled || !this.unsubscribe) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      try {
        this.reconcileAll();
      } catch {
        // A write raced a test's own write; the next change schedules another pass.
        this.schedule();
      }
    });
  }

  private reconcileAll(): void {
    const allPods = this.store.list(this.k.pod, undefined).items;
    const owned = (o: KubeObject): KubeObject[] => allPods.filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === o.metadata.uid));
    for (const sts of this.store.list(this.k.sts, undefined).items) this.statefulSet(sts, owned(sts));
    for (const d of this.store.list(this.k.deploy, undefined).items) this.deployment(d, owned(d));
    for (const j of this.store.list(this.k.job, undefined).items) this.job(j, owned(j));
    for (const p of allPods) {
      if (!p.status) this.writePodStatus(p, 'Running', this.autoReady && !this.notReady.has(`${p.metadata.namespace}/${p.metadata.name}`), 0);
    }
  }

  private statefulSet(sts: KubeObject, pods: KubeObject[]): void {
    const spec = sts.spec as { replicas?: number; serviceName?: string; template: { metadata?: { labels?: Record<string, string> }; spec: Record<string, unknown> } };
    const desired = spec.replicas ?? 1;
    const name = sts.metadata.name as string;
    const ns = sts.metadata.namespace as string;
    for (const pod of pods) {
      const ordinal = Number((pod.metadata.name as string).slice(name.length + 1));
      if (!(ordinal < desired)) this.store.delete(this.k.pod, ns, pod.metadata.name as string);
    }
    for (let i = 0; i < desired; i++) {
      const podName = `${name}-${i}`;
      if (this.store.get(this.k.pod, ns, podName)) continue;
      this.createPod(sts, podName, spec.template, { 'statefulset.kubernetes.io/pod-name': podName, 'apps.kubernetes.io/pod-index': String(i) }, {}, { hostname: podName, ...(spec.serviceName ? { subdomain: spec.serviceName } : {}) });
    }
    const now = this.store.list(this.k.pod, ns).items.filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === sts.metadata.uid));
    const ready = now.filter(isReady).length;
    this.writeStatus(this.k.sts, sts, { observedGeneration: sts.metadata.generation, replicas: now.length, readyReplicas: ready, availableReplicas: ready, currentReplicas: now.length, updatedReplicas: now.length });
  }

  private deployment(d: KubeObject, pods: KubeObject[]): void {
    const spec = d.spec as { replicas?: number; template: { metadata?: { labels?: Record<string, string> }; spec: Record<string, unknown> } };
    const desired = spec.replicas ?? 1;
    const ns = d.metadata.namespace as string;
    const live = [...pods];
    while (live.length > desired) this.store.delete(this.k.pod, ns, live.pop()?.metadata.name as string);
    for (let i = live.length; i < desired; i++) {
      this.createPod(d, `${d.metadata.name}-${randomBytes(4).toString('hex').slice(0, 8)}-${randomBytes(3).toString('hex').slice(0, 5)}`, spec.template, {}, {}, {});
    }
    const now = this.store.list(this.k.pod, ns).items.filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === d.metadata.uid));
    const ready = now.filter(isReady).length;
    this.writeStatus(this.k.deploy, d, { observedGeneration: d.metadata.generation, replicas: now.length, readyReplicas: ready, availableReplicas: ready, updatedReplicas: now.length });
  }

  private job(job: KubeObject, pods: KubeObject[]): void {
    const spec = job.spec as { completions?: number; parallelism?: number; backoffLimit?: number; suspend?: boolean; template: { metadata?: { labels?: Record<string, string> }; spec: Record<string, unknown> } };
    const status = (job.status ?? {}) as { conditions?: Array<{ type: string; status: string }> };
    const ns = job.metadata.namespace as string;
    const name = job.metadata.name as string;
    const finished = status.conditions?.some((c) => (c.type === 'Failed' || c.type === 'Complete') && c.status === 'True');
    const index = (p: KubeObject): number => Number(p.metadata.annotations?.['batch.kubernetes.io/job-completion-index'] ?? -1);
    const phase = (p: KubeObject): string => ((p.status ?? {}) as { phase?: string }).phase ?? 'Pending';
    const active = pods.filter((p) => phase(p) !== 'Failed' && phase(p) !== 'Succeeded');
    const failed = pods.filter((p) => phase(p) === 'Failed').length;
    const succeeded = new Set(pods.filter((p) => phase(p) === 'Succeeded').map(index));
    const completions = spec.completions ?? 1;
    const conditions: Array<Record<string, string>> = [...((status.conditions ?? []) as Array<Record<string, string>>)];
    const stamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    if (!finished) {
      if (spec.suspend) {
        for (const p of active) this.store.delete(this.k.pod, ns, p.metadata.name as string);
      } else if (failed > (spec.backoffLimit ?? 6)) {
        for (const p of active) this.store.delete(this.k.pod, ns, p.metadata.name as string);
        conditions.push({ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: stamp });
      } else if (succeeded.size >= completions) {
        conditions.push({ type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', lastTransitionTime: stamp });
      } else {
        const running = new Set(active.map(index));
        for (let i = 0; i < completions; i++) {
          if (running.has(i) || succeeded.has(i)) continue;
          const podName = `${name}-${i}-${randomBytes(3).toString('hex').slice(0, 5)}`;
          const subdomain = spec.template.spec.subdomain as string | undefined;
          this.createPod(
            job,
            podName,
            spec.template,
            { 'batch.kubernetes.io/job-name': name, 'job-name': name, 'batch.kubernetes.io/job-completion-index': String(i), 'batch.kubernetes.io/controller-uid': job.metadata.uid as string },
            { 'batch.kubernetes.io/job-completion-index': String(i) },
            { hostname: `${name}-${i}`, ...(subdomain ? { subdomain } : {}) },
          );
        }
      }
    }
    const now = this.store.list(this.k.pod, ns).items.filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === job.metadata.uid));
    const nowActive = now.filter((p) => phase(p) !== 'Failed' && phase(p) !== 'Succeeded');
    this.writeStatus(this.k.job, job, {
      ...(conditions.length ? { conditions } : {}),
      active: nowActive.length,
      ready: nowActive.filter(isReady).length,
      failed: now.filter((p) => phase(p) === 'Failed').length,
      succeeded: now.filter((p) => phase(p) === 'Succeeded').length,
    });
  }

  private createPod(
    owner: KubeObject,
    name: string,
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown> },
    labels: Record<string, string>,
    annotations: Record<string, string>,
    extraSpec: Record<string, unknown>,
  ): void {
    this.store.create(
      this.k.pod,
      owner.metadata.namespace,
      {
        metadata: {
          name,
          namespace: owner.metadata.namespace as string,
          labels: { ...(template.metadata?.labels ?? {}), ...labels },
          annotations: { ...(template.metadata?.annotations ?? {}), ...annotations },
          ownerReferences: [{ apiVersion: owner.apiVersion as string, kind: owner.kind as string, name: owner.metadata.name as string, uid: owner.metadata.uid as string, controller: true, blockOwnerDeletion: true }],
        },
        spec: { ...template.spec, ...extraSpec, nodeName: 'fake-node' },
      },
      { fieldValidation: 'Ignore' },
    );
  }

  private writePodStatus(pod: KubeObject, phase: string, ready: boolean, restartCount: number): void {
    // A kubelet always reports the image it runs (required in the schema).
    const containers = ((pod.spec as { containers?: Array<{ name: string; image?: string }> }).containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: `fake://${c.image ?? ''}`,
      ready,
      restartCount,
      started: phase === 'Running',
    }));
    this.store.update(this.k.pod, pod.metadata.namespace, pod.metadata.name as string, {
      ...pod,
      status: {
        phase,
        podIP: '10.0.0.1',
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }, { type: 'ContainersReady', status: ready ? 'True' : 'False' }],
        containerStatuses: containers,
      },
    }, { subresource: 'status' });
  }

  private writeStatus(kind: KindInfo, o: KubeObject, status: Record<string, unknown>): void {
    const current = this.store.get(kind, o.metadata.namespace, o.metadata.name as string);
    if (!current) return;
    this.store.update(kind, o.metadata.namespace, o.metadata.name as string, { ...current, status }, { subresource: 'status' });
  }
}

function isReady(p: KubeObject): boolean {
  return ((p.status ?? {}) as { conditions?: Array<{ type: string; status: string }> }).conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function restarts(p: KubeObject): number {
  return (((p.status ?? {}) as { containerStatuses?: Array<{ restartCount: number }> }).containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0);
}
