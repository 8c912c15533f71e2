import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock, Logger } from '@tandem/common';
import { silentLogger, systemClock } from '@tandem/common';
import { BatchEngine } from './batch-engine.js';
import type { BatchEngineStats } from './batch-engine.js';
import type { GeneratorConfig, GeneratorOptions } from './config.js';
import { resolveGeneratorConfig } from './config.js';
import type { GeneratorContext, RequestCounters, RouteHandler } from './context.js';
import { FaultInjector } from './faults.js';
import { sendDetail, sendErrorFrom, sendJson, SIMULATED_HEADER } from './http-io.js';
import { createCompletion, detokenize, listModels, tokenize } from './openai-routes.js';
import {
  finishWeightUpdate,
  getWorldSize,
  initWeightTransferEngine,
  isPaused,
  pause,
  resume,
  startWeightUpdate,
  updateWeights,
  weightInfo,
} from './weight-routes.js';
import { WeightState } from './weight-state.js';
import type { WeightStateSnapshot } from './weight-state.js';

/**
 * A simulated vLLM server: the routes and bodies Tandem drives on real vLLM
 * (OpenAI completions + the dev-mode weight-transfer routes), with latency
 * from a continuous-batching model and seeded fault injection. Every answer
 * carries `x-tandem-simulated: 1`. See docs/vllm-routes.md.
 */

/** Collaborators; tests inject a manual clock and a die spy. */
export interface GeneratorServerDeps {
  /** @default systemClock */
  clock?: Clock;
  /** @default silent */
  logger?: Logger;
  /**
   * Called when the die-after-N fault trips. generator-main passes
   * `process.exit`; the default closes the server abruptly (connections
   * reset), which is what a client sees when a pod dies.
   */
  onDie?: () => void;
}

/** Everything /tandem/stats reports. */
export interface GeneratorStats {
  simulated: true;
  model: string;
  engine: BatchEngineStats;
  weights: WeightStateSnapshot;
  requests: RequestCounters;
}

/** A running (or ready to run) simulated generator. */
export interface GeneratorServer {
  /** Binds; resolves to the base URL (`http://127.0.0.1:PORT`). */
  listen(port?: number, host?: string): Promise<string>;
  /** Aborts in-flight work, drops connections, stops listening. */
  close(): Promise<void>;
  /** Base URL; throws before listen() resolved. */
  readonly url: string;
  /** The resolved configuration. */
  readonly config: GeneratorConfig;
  stats(): GeneratorStats;
}

type Routes = Readonly<Record<string, Partial<Record<'GET' | 'POST', RouteHandler>>>>;

const ROUTES: Routes = {
  '/health': { GET: (_ctx, _req, res) => sendEmpty(res, 200) },
  '/ping': { GET: (_ctx, _req, res) => sendEmpty(res, 200), POST: (_ctx, _req, res) => sendEmpty(res, 200) },
  '/version': { GET: (_ctx, _req, res) => sendJson(res, 200, { version: '0.0.0+tandem.simulated' }) },
  '/v1/models': { GET: listModels },
  '/v1/completions': { POST: createCompletion },
  '/tokenize': { POST: tokenize },
  '/detokenize': { POST: detokenize },
  '/server_info': {
    GET: (ctx, _req, res) =>
      sendJson(res, 200, {
        vllm_config: `simulated by Tandem: model=${ctx.config.model}, max_model_len=${ctx.config.maxModelLen}`,
        vllm_env: {},
        system_env: { simulated: true },
        tandem_simulated: true,
      }),
  },
  '/get_world_size': { GET: getWorldSize },
  '/pause': { POST: pause },
  '/resume': { POST: resume },
  '/is_paused': { GET: isPaused },
  '/init_weight_transfer_engine': { POST: initWeightTransferEngine },
  '/start_weight_update': { POST: startWeightUpdate },
  '/update_weights': { POST: updateWeights },
  '/finish_weight_update': { POST: finishWeightUpdate },
  '/weight_info': { GET: weightInfo },
  '/tandem/stats': { GET: (ctx, _req, res) => sendJson(res, 200, statsOf(ctx)) },
};

function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-length': 0, [SIMULATED_HEADER]: '1' });
  res.end();
}

function statsOf(ctx: GeneratorContext): GeneratorStats {
  return {
    simulated: true,
    model: ctx.config.model,
    engine: ctx.engine.stats(),
    weights: ctx.weights.snapshot(),
    requests: { ...ctx.counters },
  };
}

/** Builds a simulated generator; call `listen()` to serve. */
export function createGeneratorServer(
  options: GeneratorOptions = {},
  deps: GeneratorServerDeps = {},
): GeneratorServer {
  const config = resolveGeneratorConfig(options);
  const clock = deps.clock ?? systemClock;
  const log = (deps.logger ?? silentLogger()).child({ component: 'simulated-generator' });
  const weights = new WeightState({
    initialVersion: config.initialPolicyVersion,
    strictOrder: config.weightTransfer.strictOrder,
  });
  const engine = new BatchEngine(
    { throughput: config.throughput, timeScale: config.timeScale },
    { clock, currentVersion: () => weights.policyVersion, gate: () => weights.gate(), logger: log },
  );
  let requestSeq = 0;
  let server: Server | null = null;
  let baseUrl: string | null = null;
  let closing: Promise<void> | null = null;
  const shutdown = new AbortController();

  const close = (): Promise<void> => {
    if (closing) return closing;
    shutdown.abort(new Error('simulated generator closed'));
    engine.close();
    const s = server;
    closing = new Promise<void>((resolve) => {
      if (s === null || !s.listening) {
        resolve();
        return;
      }
      s.close(() => resolve());
      // Hanging requests (fault injection) would keep close() waiting forever.
      s.closeAllConnections();
    });
    return closing;
  };

  const ctx: GeneratorContext = {
    config,
    clock,
    log,
    weights,
    engine,
    faults: new FaultInjector(config.faults, config.seed),
    counters: {
      completionRequests: 0,
      completionsAnswered: 0,
      injectedErrors: 0,
      injectedHangs: 0,
      injectedRateLimits: 0,
      injectedMalformed: 0,
      rejectedWhilePaused: 0,
      hangingNow: 0,
    },
    nextRequestSeq: () => requestSeq++,
    shutdown: shutdown.signal,
    die:
      deps.onDie ??
      ((): void => {
        void close();
      }),
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://simulator.invalid');
    const route = ROUTES[url.pathname];
    if (route === undefined) {
      sendDetail(res, 404, 'Not Found');
      return;
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const handler = method === 'GET' || method === 'POST' ? route[method] : undefined;
    if (handler === undefined) {
      sendDetail(res, 405, 'Method Not Allowed');
      return;
    }
    Promise.resolve()
      .then(() => handler(ctx, req, res, url))
      .catch((err: unknown) => {
        log.error({ err, path: url.pathname }, 'handler failed');
        sendErrorFrom(res, err);
      });
  };

  return {
    config,
    get url(): string {
      if (baseUrl === null) throw new Error('simulated generator is not listening');
      return baseUrl;
    },
    listen(port = 0, host = '127.0.0.1'): Promise<string> {
      const s = createServer(handle);
      server = s;
      return new Promise<string>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => {
          s.off('error', reject);
          const addr = s.address() as AddressInfo;
          const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
          baseUrl = `http://${h}:${addr.port}`;
          log.info({ url: baseUrl, model: config.model, timeScale: config.timeScale }, 'simulated generator listening');
          resolve(baseUrl);
        });
      });
    },
    close,
    stats: () => statsOf(ctx),
  };
}
