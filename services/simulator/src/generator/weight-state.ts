import { ErrorCode, TandemError } from '@tandem/common';
import type { Gate } from './batch-engine.js';

/**
 * The pause / weight-update state machine of one simulated vLLM server, as
 * driven over vLLM's dev-mode RLHF routes (see docs/vllm-routes.md):
 *
 *     init_weight_transfer_engine            (once; again to re-form the group)
 *     pause?mode=keep
 *       start_weight_update  → started
 *       update_weights       → receiving → received   (may repeat, chunked)
 *       finish_weight_update → idle, new version published
 *     resume
 *
 * Pausing and updating are independent in vLLM; Tandem (like TRL) always
 * pauses first. While `update_weights` is receiving, the engine is busy in
 * a collective RPC, so generation makes no progress even if not paused.
 *
 * Policy versions are a Tandem notion: real vLLM has no integer version in
 * these bodies. The simulator bumps the version by one at each finish unless
 * the caller names it (`tandem_policy_version`, or vLLM's optional
 * `weight_version` string when it is an integer).
 */

/** vLLM's pause modes (`POST /pause?mode=`). */
export type PauseMode = 'abort' | 'wait' | 'keep';

/** Phase of the current weight update. */
export type UpdatePhase = 'idle' | 'started' | 'receiving' | 'received';

/** The NCCL group parameters from `init_weight_transfer_engine`. */
export interface TransferEngineInfo {
  masterAddress: string;
  masterPort: number;
  rankOffset: number;
  worldSize: number;
}

/** Options of {@link WeightState}. */
export interface WeightStateOptions {
  initialVersion: number;
  /** Reject out-of-order update calls with FAILED_PRECONDITION (HTTP 409). */
  strictOrder: boolean;
}

/** Snapshot for /tandem/stats and tests. */
export interface WeightStateSnapshot {
  policyVersion: number;
  paused: boolean;
  pauseMode: PauseMode | null;
  updatePhase: UpdatePhase;
  pendingPolicyVersion: number | null;
  transferEngine: TransferEngineInfo | null;
  updatesFinished: number;
}

/** The state machine. Methods throw {@link TandemError}; the server maps codes to HTTP. */
export class WeightState {
  private version: number;
  private pauseMode: PauseMode | null = null;
  private phase: UpdatePhase = 'idle';
  private pendingVersion: number | null = null;
  private engine: TransferEngineInfo | null = null;
  private finished = 0;

  constructor(private readonly options: WeightStateOptions) {
    this.version = options.initialVersion;
  }

  /** The version generation serves now. */
  get policyVersion(): number {
    return this.version;
  }

  /** Whether `/pause` is in effect. */
  get paused(): boolean {
    return this.pauseMode !== null;
  }

  /** What the batch engine may run (see {@link Gate}). */
  gate(): Gate {
    if (this.phase === 'receiving') return 'closed';
    if (this.pauseMode === 'keep') return 'closed';
    // abort and wait map to vLLM's PAUSED_NEW: running requests continue
    // (wait) or were aborted (abort); nothing new is scheduled.
    if (this.pauseMode !== null) return 'running-only';
    return 'open';
  }

  snapshot(): WeightStateSnapshot {
    return {
      policyVersion: this.version,
      paused: this.paused,
      pauseMode: this.pauseMode,
      updatePhase: this.phase,
      pendingPolicyVersion: this.pendingVersion,
      transferEngine: this.engine,
      updatesFinished: this.finished,
    };
  }

  /** `POST /pause`. Pausing twice keeps the latest mode, as vLLM does. */
  pause(mode: PauseMode): void {
    this.pauseMode = mode;
  }

  /** `POST /resume`. Resuming when not paused is a no-op, as in vLLM. */
  resume(): void {
    this.pauseMode = null;
  }

  /**
   * `POST /init_weight_transfer_engine`. Mirrors vLLM's NCCL engine, which
   * builds its init info from exactly these four fields.
   */
  initTransferEngine(initInfo: Record<string, unknown>): TransferEngineInfo {
    const masterAddress = initInfo['master_address'];
    const masterPort = initInfo['master_port'];
    const rankOffset = initInfo['rank_offset'];
    const worldSize = initInfo['world_size'];
    const missing = ['master_address', 'master_port', 'rank_offset', 'world_size'].filter(
      (k) => initInfo[k] === undefined,
    );
    if (missing.length > 0) {
      // vLLM raises ValueError("Invalid init_info for NCCLWeightTransferEngine: ...")
      // inside the worker RPC, which surfaces as HTTP 500.
      throw new TandemError(
        ErrorCode.Internal,
        `Invalid init_info for NCCLWeightTransferEngine: missing ${missing.join(', ')}`,
      );
    }
    if (
      typeof masterAddress !== 'string' ||
      typeof masterPort !== 'number' ||
      typeof rankOffset !== 'number' ||
      typeof worldSize !== 'number' ||
      !Number.isInteger(masterPort) ||
      !Number.isInteger(rankOffset) ||
      !Number.isInteger(worldSize)
    ) {
      throw new TandemError(
        ErrorCode.Internal,
        'Invalid init_info for NCCLWeightTransferEngine: master_address must be a string; ' +
          'master_port, rank_offset and world_size integers',
      );
    }
    this.engine = { masterAddress, masterPort, rankOffset, worldSize };
    return this.engine;
  }

  /** `POST /start_weight_update`. */
  startUpdate(): void {
    if (this.options.strictOrder && this.phase !== 'idle') {
      throw new TandemError(
        ErrorCode.FailedPrecondition,
        `start_weight_update while an update is ${this.phase}; call finish_weight_update first`,
      );
    }
    this.phase = 'started';
    this.pendingVersion = null;
  }

  /**
   * `POST /update_weights`, first half: the engine starts receiving. The
   * caller sleeps for the transfer time, then calls {@link endReceive}.
   */
  beginReceive(tandemPolicyVersion: number | null): void {
    if (this.engine === null) {
      // vLLM: RuntimeError("NCCL weight transfer not initialized. ...") → 500.
      throw new TandemError(
        ErrorCode.Internal,
        'NCCL weight transfer not initialized. Call init_weight_transfer_engine first.',
      );
    }
    if (this.options.strictOrder && this.phase !== 'started' && this.phase !== 'received') {
      throw new TandemError(
        ErrorCode.FailedPrecondition,
        `update_weights while the update is ${this.phase}; call start_weight_update first`,
      );
    }
    if (this.phase === 'receiving') {
      throw new TandemError(ErrorCode.FailedPrecondition, 'update_weights is already receiving');
    }
    this.phase = 'receiving';
    if (tandemPolicyVersion !== null) this.pendingVersion = tandemPolicyVersion;
  }

  /** `POST /update_weights`, second half: the broadcast is in. */
  endReceive(): void {
    if (this.phase === 'receiving') this.phase = 'received';
  }

  /**
   * `POST /finish_weight_update`: publishes and returns the new version:
   * the explicit one, else the one given to update_weights, else current + 1.
   */
  finishUpdate(explicitVersion: number | null): number {
    if (this.options.strictOrder && this.phase !== 'received' && this.phase !== 'started') {
      throw new TandemError(
        ErrorCode.FailedPrecondition,
        `finish_weight_update while the update is ${this.phase}; call start_weight_update first`,
      );
    }
    if (this.phase === 'receiving') {
      throw new TandemError(ErrorCode.FailedPrecondition, 'finish_weight_update while update_weights is receiving');
    }
    const next = explicitVersion ?? this.pendingVersion ?? this.version + 1;
    if (next < this.version) {
      throw new TandemError(
        ErrorCode.InvalidArgument,
        `policy version may not go backwards: serving ${this.version}, asked for ${next}`,
      );
    }
    this.version = next;
    this.phase = 'idle';
    this.pendingVersion = null;
    this.finished++;
    return next;
  }
}
