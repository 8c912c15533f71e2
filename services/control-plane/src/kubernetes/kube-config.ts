import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

/** How to reach the apiserver. */
export interface KubeConnection {
  /** `https://10.0.0.1:443` or `http://127.0.0.1:port` (tests). */
  server: string;
  /** Bearer token, read on every request: projected service-account tokens rotate. */
  token?: () => string | undefined;
  /** PEM CA bundle for https. */
  ca?: string;
  /** PEM client certificate and key (kubeconfig users). */
  cert?: string;
  key?: string;
  insecureSkipTlsVerify?: boolean;
  /** Namespace of the current context / the pod. */
  namespace: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Whether the process runs in a pod with a service account mounted. */
export function inCluster(env: Record<string, string | undefined>): boolean {
  return env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_PORT !== undefined;
}

/**
 * The in-cluster connection: the service host from the environment, the
 * mounted service-account token (re-read at most once a minute) and CA.
 */
export function inClusterConnection(env: Record<string, string | undefined>, dir = SA_DIR): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST as string;
  const port = env.KUBERNETES_SERVICE_PORT as string;
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let cached: { token: string; at: number } | undefined;
  const token = (): string => {
    const now = Date.now();
    if (!cached || now - cached.at > 60_000) cached = { token: readFileSync(`${dir}/token`, 'utf8').trim(), at: now };
    return cached.token;
  };
  return { server, token, ca: readFileSync(`${dir}/ca.crt`, 'utf8'), namespace: readFileSync(`${dir}/namespace`, 'utf8').trim() };
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string; namespace?: string } }>;
  clusters?: Array<{ name: string; cluster: { server: string; 'certificate-authority-data'?: string; 'certificate-authority'?: string; 'insecure-skip-tls-verify'?: boolean } }>;
  users?: Array<{ name: string; user: { token?: string; 'client-certificate-data'?: string; 'client-key-data'?: string } }>;
}

/**
 * A kubeconfig's current context (server, CA, token or client certificate).
 * Exec and auth-provider plugins are not supported: use a token.
 */
export function kubeconfigConnection(path: string, contextName?: string): KubeConnection {
  const file = parseYaml(readFileSync(path, 'utf8')) as KubeconfigFile;
  const name = contextName ?? file['current-context'];
  const ctx = file.contexts?.find((c) => c.name === name)?.context;
  if (!ctx) throw new Error(`kubeconfig ${path}: context ${String(name)} not found`);
  const cluster = file.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster) throw new Error(`kubeconfig ${path}: cluster ${ctx.cluster} not found`);
  const user = file.users?.find((u) => u.name === ctx.user)?.user ?? {};
  const b64 = (s: string | undefined): string | undefined => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));
  const ca = b64(cluster['certificate-authority-data']) ?? (cluster['certificate-authority'] ? readFileSync(cluster['certificate-authority'], 'utf8') : undefined);
  const cert = b64(user['client-certificate-data']);
  const key = b64(user['client-key-data']);
  const token = user.token;
  return {
    server: cluster.server,
    namespace: ctx.namespace ?? 'default',
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(token ? { token: () => token } : {}),
    ...(cluster['insecure-skip-tls-verify'] ? { insecureSkipTlsVerify: true } : {}),
  };
}
