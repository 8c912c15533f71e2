import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock, Logger } from '@tandem/common';
import type { BatchEngine } from './batch-engine.js';
import type { GeneratorConfig } from './config.js';
import type { FaultInjector } from './faults.js';
import type { WeightState } from './weight-state.js';

/** Request counters of the simulated generator (all simulated). */
export interface RequestCounters {
  completionRequests: number;
  completionsAnswered: number;
  injectedErrors: number;
  injectedHangs: number;
  injectedRateLimits: number;
  injectedMalformed: number;
  rejectedWhilePaused: number;
  /** Requests being held open by the hang fault right now. */
  hangingNow: number;
}

/** What every route handler of the generator shares. */
export interface GeneratorContext {
  config: GeneratorConfig;
  clock: Clock;
  log: Logger;
  weights: WeightState;
  engine: BatchEngine;
  faults: FaultInjector;
  counters: RequestCounters;
  /** Sequence number of completion requests, for unseeded sampling. */
  nextRequestSeq: () => number;
  /** Aborted when the server closes; long waits (weight transfer) listen to it. */
  shutdown: AbortSignal;
  /** Called once the die-after-N fault trips, after the answer is flushed. */
  die: () => void;
}

/** One route handler. `url` is parsed relative to the server. */
export type RouteHandler = (
  ctx: GeneratorContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => Promise<void> | void;
