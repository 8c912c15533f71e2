import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { RunServiceClient, type Run } from '@tandem/protocol';
import { TINY_RUN_SPEC as spec, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';
import { tokenDigest } from './tokens-file.js';

/**
 * Namespace authorization over both API surfaces, against a real Redis and
 * real servers: for every operation, team A's token is refused on team B's
 * run (403 / PERMISSION_DENIED naming the namespace), and a request without
 * a token or with an unknown one is 401 / UNAUTHENTICATED.
 */

const TOKENS = {
  teamA: 'team-a-editor-token-0123456789',
  teamB: 'team-b-editor-token-0123456789',
  viewerB: 'team-b-viewer-token-0123456789',
  admin: 'cluster-admin-token-0123456789',
};

let cp: TestControlPlane;
let dir: string;
let http: string;
let grpc: RunServiceClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-authz-'));
  const tokensFile = join(dir, 'tokens.yaml');
  // One entry by digest, the others in the clear: both forms are accepted.
  await writeFile(
    tokensFile,
    [
      'tokens:',
      `  - { subject: alice, sha256: ${tokenDigest(TOKENS.teamA).toString('hex')}, role: editor, namespaces: [team-a] }`,
      `  - { subject: bob, token: ${TOKENS.teamB}, role: editor, namespaces: [team-b] }`,
      `  - { subject: carol, token: ${TOKENS.viewerB}, role: viewer, namespaces: [team-b] }`,
      `  - { subject: root, token: ${TOKENS.admin}, role: admin, namespaces: ['*'] }`,
    ].join('\n'),
  );
  cp = await startTestControlPlane({ TANDEM_RUNTIME: 'none', TANDEM_AUTH_TOKENS_FILE: tokensFile });
  http = cp.httpUrl;
  grpc = new RunServiceClient(cp.grpcAddress, credentials.createInsecure());
  const b = await call('POST', '/v1/runs', TOKENS.teamB, { spec, runId: 'b-run', namespace: 'team-b' });
  expect(b.status).toBe(201);
  const a = await call('POST', '/v1/runs', TOKENS.teamA, { spec, runId: 'a-run', namespace: 'team-a' });
  expect(a.status).toBe(201);
}, 60_000);

afterAll(async () => {
  grpc?.close();
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; json: any }> {
  const abort = new AbortController();
  const res = await fetch(`${http}${path}`, {
    method,
    signal: abort.signal,
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  // A watch that was (wrongly) allowed would stream until the run ends: read one line at most.
  const text = res.headers.get('content-type')?.includes('ndjson') ? '{}' : await res.text();
  abort.abort();
  return { status: res.status, json: JSON.parse(text) };
}

/** Every HTTP operation on a run of team B (or in team B's namespace). */
const HTTP_OPERATIONS: Array<{ name: string; method: string; path: string; body?: unknown }> = [
  { name: 'submit', method: 'POST', path: '/v1/runs', body: { spec, runId: 'a-into-b', namespace: 'team-b' } },
  { name: 'list (namespace filter)', method: 'GET', path: '/v1/runs?namespace=team-b' },
  { name: 'get', method: 'GET', path: '/v1/runs/b-run' },
  { name: 'cancel', method: 'POST', path: '/v1/runs/b-run:cancel', body: { reason: 'from team a' } },
  { name: 'scale', method: 'POST', path: '/v1/runs/b-run:scale', body: { generators: 3 } },
  { name: 'watch', method: 'GET', path: '/v1/runs/b-run:watch' },
  { name: 'stats (status page data)', method: 'GET', path: '/v1/runs/b-run/stats' },
  { name: 'events', method: 'GET', path: '/v1/runs/b-run/events' },
  { name: 'list generators', method: 'GET', path: '/v1/runs/b-run/generators' },
  { name: 'register generator', method: 'POST', path: '/v1/runs/b-run/generators', body: { id: 'g', url: 'http://127.0.0.1:1' } },
  { name: 'remove generator', method: 'DELETE', path: '/v1/runs/b-run/generators/g' },
  { name: 'credentials', method: 'GET', path: '/v1/runs/b-run/credentials' },
];

describe('HTTP API authorization', () => {
  for (const op of HTTP_OPERATIONS) {
    it(`${op.name}: team A is refused on team B's run, no token and a wrong token are 401`, async () => {
      const denied = await call(op.method, op.path, TOKENS.teamA, op.body);
      expect(denied.status).toBe(403);
      expect(denied.json.error.code).toBe('PERMISSION_DENIED');
      expect(denied.json.error.message).toContain('namespace team-b');
      expect(denied.json.error.message).toContain('alice');
      const anonymous = await call(op.method, op.path, undefined, op.body);
      expect(anonymous.status).toBe(401);
      expect(anonymous.json.error.code).toBe('UNAUTHENTICATED');
      const wrong = await call(op.method, op.path, 'not-a-known-token-at-all', op.body);
      expect(wrong.status).toBe(401);
      expect(wrong.json.error.message).toBe('invalid or expired token');
    });
  }

  it('the refused operations changed nothing: team B still sees its run running, unscaled, without generators', async () => {
    const run = await call('GET', '/v1/runs/b-run', TOKENS.teamB);
    expect(run.status).toBe(200);
    expect(run.json.namespace).toBe('team-b');
    expect(run.json.status.phase).not.toBe('Cancelled');
    expect(run.json.spec.generator.replicas).not.toBe(3);
    expect((await call('GET', '/v1/runs/b-run/generators', TOKENS.teamB)).json.generators).toEqual([]);
    expect((await call('GET', '/v1/runs/a-into-b', TOKENS.admin)).status).toBe(404);
  });

  it('list shows each caller only the namespaces it may read', async () => {
    const ids = async (token: string): Promise<string[]> => (await call('GET', '/v1/runs', token)).json.runs.map((r: { id: string }) => r.id).sort();
    expect(await ids(TOKENS.teamA)).toEqual(['a-run']);
    expect(await ids(TOKENS.teamB)).toEqual(['b-run']);
    expect(await ids(TOKENS.viewerB)).toEqual(['b-run']);
    expect(await ids(TOKENS.admin)).toEqual(['a-run', 'b-run']);
  });

  it('a viewer reads its namespace but may not change it', async () => {
    expect((await call('GET', '/v1/runs/b-run', TOKENS.viewerB)).status).toBe(200);
    const cancel = await call('POST', '/v1/runs/b-run:cancel', TOKENS.viewerB, {});
    expect(cancel.status).toBe(403);
    expect(cancel.json.error.message).toContain('role viewer');
    const submit = await call('POST', '/v1/runs', TOKENS.viewerB, { spec, namespace: 'team-b' });
    expect(submit.status).toBe(403);
  });

  it('malformed authorization headers are 401 naming the expected form', async () => {
    const res = await fetch(`${http}/v1/runs`, { headers: { authorization: `Basic ${TOKENS.teamA}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.message).toContain('Bearer <token>');
  });

  it('health, readiness and (by default) metrics stay open', async () => {
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
    expect((await fetch(`${http}/readyz`)).status).toBe(200);
    expect((await fetch(`${http}/metrics`)).status).toBe(200);
  });

  it('a bad namespace is a 400 naming the field', async () => {
    const res = await call('POST', '/v1/runs', TOKENS.admin, { spec, namespace: 'Team_B' });
    expect(res.status).toBe(400);
    expect(res.json.error.fieldViolations[0].path).toBe('namespace');
  });
});

function md(token: string | undefined): Metadata {
  const m = new Metadata();
  if (token !== undefined) m.set('authorization', `Bearer ${token}`);
  return m;
}

function unary<Res>(invoke: (cb: (err: ServiceError | null, res: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res))));
}

/** The status a watch stream ends with before any event (or OK when it streamed one). */
function watchStatus(token: string | undefined): Promise<{ code: status; details: string }> {
  return new Promise((resolve) => {
    const stream = grpc.watchRun({ runId: 'b-run' }, md(token));
    stream.on('data', () => {
      stream.cancel();
      resolve({ code: status.OK, details: 'streamed' });
    });
    stream.on('error', (err: ServiceError) => resolve({ code: err.code, details: err.details }));
  });
}

/** Every RunService method against team B's run (or namespace). */
const GRPC_OPERATIONS: Array<{ name: string; invoke: (token: string | undefined) => Promise<{ code: status; details: string }> }> = [
  { name: 'SubmitRun', invoke: (t) => settle(unary<Run>((cb) => grpc.submitRun({ spec, runId: 'grpc-a-into-b', namespace: 'team-b' }, md(t), cb))) },
  { name: 'GetRun', invoke: (t) => settle(unary<Run>((cb) => grpc.getRun({ runId: 'b-run' }, md(t), cb))) },
  { name: 'ListRuns (namespace filter)', invoke: (t) => settle(unary((cb) => grpc.listRuns({ namespace: 'team-b' }, md(t), cb))) },
  { name: 'CancelRun', invoke: (t) => settle(unary<Run>((cb) => grpc.cancelRun({ runId: 'b-run', reason: 'x' }, md(t), cb))) },
  { name: 'ScaleRun', invoke: (t) => settle(unary<Run>((cb) => grpc.scaleRun({ runId: 'b-run', generators: 3 }, md(t), cb))) },
  { name: 'WatchRun', invoke: watchStatus },
];

async function settle(p: Promise<unknown>): Promise<{ code: status; details: string }> {
  try {
    await p;
    return { code: status.OK, details: 'ok' };
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
}

describe('gRPC RunService authorization', () => {
  for (const op of GRPC_OPERATIONS) {
    it(`${op.name}: PERMISSION_DENIED for team A, UNAUTHENTICATED without or with a wrong token`, async () => {
      const denied = await op.invoke(TOKENS.teamA);
      expect(denied.code).toBe(status.PERMISSION_DENIED);
      expect(denied.details).toContain('namespace team-b');
      expect((await op.invoke(undefined)).code).toBe(status.UNAUTHENTICATED);
      expect((await op.invoke('not-a-known-token-at-all')).code).toBe(status.UNAUTHENTICATED);
    });
  }

  it('team B itself is served, and ListRuns without a filter shows team A only its own runs', async () => {
    expect((await op('GetRun', TOKENS.teamB)).code).toBe(status.OK);
    expect((await watchStatus(TOKENS.teamB)).code).toBe(status.OK);
    const list = await unary<{ runs: Run[] }>((cb) => grpc.listRuns({ namespace: '' }, md(TOKENS.teamA), cb));
    expect(list.runs.map((r) => [r.id, r.namespace])).toEqual([['a-run', 'team-a']]);
  });
});

function op(name: string, token: string): Promise<{ code: status; details: string }> {
  const found = GRPC_OPERATIONS.find((o) => o.name === name);
  if (!found) throw new Error(`no operation ${name}`);
  return found.invoke(token);
}

const CLI_MAIN = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_MAIN, ...args], { env: { ...process.env, TANDEM_TOKEN: '', TANDEM_NAMESPACE: '', ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe.skipIf(!existsSync(CLI_MAIN))('tandem runs with a token', () => {
  it('sends TANDEM_TOKEN or --token, lists only the allowed namespace, and says why it is refused', async () => {
    const listed = await cli(['runs', 'list', '--server', http, '-o', 'json'], { TANDEM_TOKEN: TOKENS.teamA });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((r) => r.id)).toEqual(['a-run']);
    const refused = await cli(['runs', 'cancel', 'b-run', '--server', http, '--token', TOKENS.teamA], {});
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('namespace team-b');
    const anonymous = await cli(['runs', 'list', '--server', http], {});
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toContain('missing credentials');
    const narrowed = await cli(['runs', 'list', '--server', http, '-o', 'json', '-n', 'team-b'], { TANDEM_TOKEN: TOKENS.admin });
    expect((JSON.parse(narrowed.stdout) as Array<{ id: string }>).map((r) => r.id)).toEqual(['b-run']);
  }, 60_000);
});
