import { randomBytes } from 'node:crypto';
import type { Clock, Logger } from '@tandem/common';
import type { KubeApi } from './kube-client.js';
import { apiVersionOf, EVENT, RLRUN, type KubeObject } from './resources.js';

/** Normal or Warning, as `kubectl describe` shows them. */
export type EventType = 'Normal' | 'Warning';

/**
 * Records core/v1 Events about RLRuns (what `kubectl describe rlrun` and
 * `kubectl get events` show). Best effort: an Event that cannot be written
 * is logged and dropped, never failing a reconcile.
 */
export class EventRecorder {
  private readonly api: KubeApi;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly instance: string;

  constructor(deps: { api: KubeApi; clock: Clock; log: Logger; instance: string }) {
    this.api = deps.api;
    this.clock = deps.clock;
    this.log = deps.log;
    this.instance = deps.instance;
  }

  async record(run: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const ns = run.metadata.namespace as string;
    const now = new Date(this.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const event: KubeObject = {
      metadata: { name: `${run.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns },
      involvedObject: {
        apiVersion: apiVersionOf(RLRUN),
        kind: RLRUN.kind,
        name: run.metadata.name,
        namespace: ns,
        uid: run.metadata.uid,
        resourceVersion: run.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: 'tandem-control-plane' },
      reportingComponent: 'tandem.dev/control-plane',
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.api.create(EVENT, ns, event);
    } catch (err) {
      this.log.warn({ err, reason, run: run.metadata.name }, 'could not record a Kubernetes Event');
    }
  }
}
