import type { Clock, Logger } from '@tandem/common';
import { controlPlaneHooks, type ControlPlaneHooksDeps } from './control-plane-hooks.js';
import { inCluster, inClusterConnection, kubeconfigConnection } from './kube-config.js';
import { HttpKubeApi, type KubeApi } from './kube-client.js';
import type { KubernetesConfig } from './kubernetes-config.js';
import { KubernetesRuntime, type KubernetesRuntimeTuning } from './kubernetes-runtime.js';

/** What {@link createKubernetesRuntime} needs besides the config. */
export interface CreateKubernetesRuntimeDeps extends Omit<ControlPlaneHooksDeps, 'clock' | 'log'> {
  clock: Clock;
  log: Logger;
  /** The Kubernetes client; made from TANDEM_KUBECONFIG or the in-cluster service account when omitted. */
  api?: KubeApi;
  /** Test overrides of timings (lease, backoff, status interval). */
  tuning?: KubernetesRuntimeTuning;
  env?: Record<string, string | undefined>;
}

/** Wires the kubernetes runtime to the control plane (called from control-plane.ts). */
export function createKubernetesRuntime(config: KubernetesConfig, deps: CreateKubernetesRuntimeDeps): KubernetesRuntime {
  const env = deps.env ?? process.env;
  let api = deps.api;
  let namespace = config.namespace;
  if (!api) {
    const conn = config.kubeconfig ? kubeconfigConnection(config.kubeconfig) : inCluster(env) ? inClusterConnection(env) : undefined;
    if (!conn) throw new Error('TANDEM_RUNTIME=kubernetes needs a cluster: run in a pod with a service account, or set TANDEM_KUBECONFIG');
    api = new HttpKubeApi(conn);
    namespace = namespace ?? conn.namespace;
  }
  const ns = namespace ?? 'default';
  const log = deps.log.child({ component: 'kubernetes-runtime', namespace: ns });
  return new KubernetesRuntime({
    api,
    namespace: ns,
    identity: config.identity,
    settings: {
      ...config.workloads,
      controlPlaneGrpcAddress: config.workloads.controlPlaneGrpcAddress ?? `${config.advertise?.serviceName ?? 'tandem-control-plane'}.${ns}.svc:${config.grpcPort}`,
    },
    ...(config.advertise ? { advertise: { ...config.advertise, grpcPort: config.grpcPort } } : {}),
    hooks: controlPlaneHooks({ ...deps, log }),
    clock: deps.clock,
    log,
    tuning: { leaseName: config.leaseName, statusIntervalMs: config.statusIntervalMs, ...(deps.tuning ?? {}) },
  });
}
