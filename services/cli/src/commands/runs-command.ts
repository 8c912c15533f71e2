import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { stringify, parse as parseYaml } from 'yaml';
import { ErrorCode, TandemError } from '@tandem/common';
import { columnLines } from './columns.js';
import { UsageError, intOption } from './options.js';

export const RUNS_USAGE = `usage: tandem runs <command> [--server URL] [-o table|json|yaml]

  submit -f FILE [--id ID]     submit a run spec (YAML or JSON)
  list                         list runs
  get ID [--events N]          show one run and its last N events (default 20; 0: none)
  events ID [--limit N]        the run's journal: phase changes, cut-offs, restarts, stale drops
  cancel ID [--reason TEXT]    cancel a run
  watch ID                     stream a run's progress until it ends
  scale ID --generators N      resize a running run's generator pool
  credentials ID               the run's trainer token and Redis URL (for external trainers and workers)

  --server URL      control plane HTTP API (default $TANDEM_SERVER or http://127.0.0.1:8080);
                    https:// with a private CA: NODE_EXTRA_CA_CERTS=ca.pem
  --token TOKEN     bearer token (default $TANDEM_TOKEN; prefer the variable: flags show in ps)
  -n, --namespace NS  namespace to submit into and to list (default $TANDEM_NAMESPACE; submit: default)
  -o FORMAT         table (default), json or yaml`;

/** Where the API is and who calls it. */
interface Connection {
  server: string;
  token: string | undefined;
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API JSON, shape documented in docs/api.md

/** `tandem runs ...`. Returns the exit code. */
export async function runsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      server: { type: 'string', default: process.env.TANDEM_SERVER ?? 'http://127.0.0.1:8080' },
      token: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      output: { type: 'string', short: 'o', default: 'table' },
      file: { type: 'string', short: 'f' },
      id: { type: 'string' },
      reason: { type: 'string' },
      generators: { type: 'string' },
      events: { type: 'string' },
      limit: { type: 'string' },
    },
    strict: true,
  });
  const server = (values.server ?? '').replace(/\/+$/, '');
  const conn: Connection = { server, token: values.token ?? (process.env.TANDEM_TOKEN || undefined) };
  const namespace = values.namespace ?? (process.env.TANDEM_NAMESPACE || undefined);
  const output = values.output ?? 'table';
  if (!['table', 'json', 'yaml'].includes(output)) throw new UsageError(`-o must be table, json or yaml, got ${output}`);
  const id = positionals[0];
  const needId = (): string => {
    if (!id) throw new UsageError(`tandem runs ${sub} needs a run id`);
    return id;
  };
  const print = (value: Json | Json[]): void => {
    if (output === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else if (output === 'yaml') process.stdout.write(stringify(value));
    else process.stdout.write(table(Array.isArray(value) ? value : [value]));
  };
  switch (sub) {
    case 'submit': {
      if (!values.file) throw new UsageError('tandem runs submit needs -f FILE');
      const text = await readFile(values.file, 'utf8').catch((err: unknown) => {
        throw new TandemError(ErrorCode.InvalidArgument, `cannot read ${values.file}: ${(err as Error).message}`);
      });
      let doc: unknown;
      try {
        doc = parseYaml(text);
      } catch (err) {
        throw new TandemError(ErrorCode.InvalidArgument, `${values.file} is not valid YAML or JSON: ${(err as Error).message}`);
      }
      // Accept a bare spec, {spec: ...}, or an RLRun manifest (its spec).
      const obj = (doc ?? {}) as Json;
      const spec = obj.kind === 'RLRun' || obj.spec !== undefined ? obj.spec : obj;
      const runId = values.id ?? obj.metadata?.name;
      print(await api(conn, 'POST', '/v1/runs', { spec, ...(runId ? { runId } : {}), ...(namespace ? { namespace } : {}) }));
      return 0;
    }
    case 'list':
      print(((await api(conn, 'GET', `/v1/runs${namespace ? `?namespace=${encodeURIComponent(namespace)}` : ''}`)).runs ?? []) as Json[]);
      return 0;
    case 'get': {
      const n = values.events === undefined ? 20 : intOption('--events', values.events, 0, 200);
      const run = await api(conn, 'GET', `/v1/runs/${encodeURIComponent(needId())}`);
      const events = n === 0 ? [] : (((await api(conn, 'GET', `/v1/runs/${encodeURIComponent(needId())}/events?limit=${n}`)).events ?? []) as Json[]);
      if (output === 'table') process.stdout.write(`${table([run])}${n === 0 ? '' : `\nEvents:\n${eventTable(events)}`}`);
      else print({ ...run, events });
      return 0;
    }
    case 'events': {
      const n = values.limit === undefined ? 50 : intOption('--limit', values.limit, 1, 200);
      const events = ((await api(conn, 'GET', `/v1/runs/${encodeURIComponent(needId())}/events?limit=${n}`)).events ?? []) as Json[];
      if (output === 'table') process.stdout.write(eventTable(events));
      else print(events);
      return 0;
    }
    case 'cancel':
      print(await api(conn, 'POST', `/v1/runs/${encodeURIComponent(needId())}:cancel`, values.reason ? { reason: values.reason } : {}));
      return 0;
    case 'scale': {
      const generators = intOption('--generators', values.generators, 0, 4096);
      print(await api(conn, 'POST', `/v1/runs/${encodeURIComponent(needId())}:scale`, { generators }));
      return 0;
    }
    case 'watch':
      return watch(conn, needId(), output);
    case 'credentials':
      print(await api(conn, 'GET', `/v1/runs/${encodeURIComponent(needId())}/credentials`));
      return 0;
    default:
      throw new UsageError(sub ? `unknown command: tandem runs ${sub}` : 'tandem runs needs a command');
  }
}

function authHeaders(conn: Connection): Record<string, string> {
  return conn.token ? { authorization: `Bearer ${conn.token}` } : {};
}

async function api(conn: Connection, method: string, path: string, body?: unknown, followLeader = true): Promise<Json> {
  const { server } = conn;
  let res: Response;
  try {
    res = await fetch(`${server}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...authHeaders(conn) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new TandemError(ErrorCode.Unavailable, `cannot reach the control plane at ${server}: ${(err as Error).message} (is 'tandem up' running? see --server)`);
  }
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch {
    throw new TandemError(ErrorCode.Internal, `${server} answered ${res.status} with a body that is not JSON`);
  }
  if (!res.ok) {
    const e = json.error ?? {};
    // A standby names the leader (UNAVAILABLE, NOT_LEADER): follow it once.
    const leader = e.reason === 'NOT_LEADER' ? leaderUrl(String(e.message ?? '')) : undefined;
    if (followLeader && leader && leader !== server) {
      process.stderr.write(`${server} is a standby; sending the request to the leader at ${leader}\n`);
      return api({ ...conn, server: leader }, method, path, body, false);
    }
    throw new TandemError((e.code as ErrorCode) ?? ErrorCode.Internal, String(e.message ?? `HTTP ${res.status}`));
  }
  return json;
}

/** The leader's HTTP URL in a standby's NOT_LEADER message (`the leader is at <url> (gRPC ...)`). */
export function leaderUrl(message: string): string | undefined {
  return /the leader is at (https?:\/\/\S+?) \(gRPC /.exec(message)?.[1];
}

async function watch(conn: Connection, id: string, output: string): Promise<number> {
  const { server } = conn;
  const res = await fetch(`${server}/v1/runs/${encodeURIComponent(id)}:watch`, { headers: authHeaders(conn) }).catch((err: unknown) => {
    throw new TandemError(ErrorCode.Unavailable, `cannot reach the control plane at ${server}: ${(err as Error).message}`);
  });
  if (!res.ok || !res.body) {
    const body = (await res.json().catch(() => ({}))) as Json;
    throw new TandemError((body.error?.code as ErrorCode) ?? ErrorCode.Internal, String(body.error?.message ?? `HTTP ${res.status}`));
  }
  const decoder = new TextDecoder();
  let buffered = '';
  let phase = '';
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.trim()) continue;
      const event = JSON.parse(line) as Json;
      const s = event.status ?? {};
      phase = s.phase ?? phase;
      if (output === 'json') process.stdout.write(`${line}\n`);
      else {
        const l = s.ledger ?? {};
        process.stdout.write(
          `${new Date().toISOString()} ${id} ${s.phase} step ${s.trainerStep ?? 0}/${s.maxSteps ?? 0} v${s.policyVersion ?? 0}` +
            ` queue ${s.queueDepth ?? 0} in-flight ${s.inFlight ?? 0} trained ${l.trained ?? 0} dropped ${l.droppedStale ?? 0}\n`,
        );
      }
    }
  }
  return phase === 'Succeeded' || phase === 'Cancelled' ? 0 : phase === 'Failed' ? 1 : 0;
}

/** Runs as a table: id, phase, step, version, queue, in flight, ledger. */
/** kubectl-describe style: oldest first, one line each. */
function eventTable(events: Json[]): string {
  if (events.length === 0) return '  <none>\n';
  const header = ['TIME', 'TYPE', 'REASON', 'MESSAGE'];
  const rows = events.map((e) => [String(e.time ?? ''), String(e.type ?? ''), String(e.reason ?? ''), String(e.message ?? '')]);
  return `${columnLines(header, rows, { indent: '  ' }).join('\n')}\n`;
}

function table(runs: Json[]): string {
  const header = ['ID', 'PHASE', 'STEP', 'VERSION', 'K', 'QUEUE', 'IN-FLIGHT', 'GENERATORS', 'TRAINED', 'DROPPED', 'FAILED', 'CANCELLED', 'CREATED'];
  const rows = runs.map((r) => {
    const s = r.status ?? {};
    const l = s.ledger ?? {};
    const g = s.generators ?? {};
    return [
      r.id,
      s.phase,
      `${s.trainerStep ?? 0}/${s.maxSteps ?? 0}`,
      s.policyVersion ?? 0,
      r.spec?.async?.maxTrajectoryAgeSteps ?? '',
      s.queueDepth ?? 0,
      s.inFlight ?? 0,
      `${(g.ready ?? 0) + (g.syncing ?? 0)}/${g.desired ?? 0}`,
      l.trained ?? 0,
      l.droppedStale ?? 0,
      l.failed ?? 0,
      l.cancelled ?? 0,
      s.createdAt ?? '',
    ].map((v) => String(v));
  });
  return `${columnLines(header, rows).join('\n')}\n`;
}
