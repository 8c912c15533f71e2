import { ErrorCode, TandemError } from '@tandem/common';

/**
 * The vLLM admin routes the weight-sync coordinator drives, as TRL's async
 * GRPO trainer drives them (huggingface/trl
 * `trl/experimental/async_grpo/vllm_client.py`), served by vLLM's dev-mode
 * RLHF router (vllm-project/vllm
 * `vllm/entrypoints/serve/dev/rlhf/api_router.py`). Bodies and responses are
 * listed in docs/vllm-routes.md. Every call takes a deadline.
 */

/** The NCCL group parameters of `/init_weight_transfer_engine`. */
export interface TransferGroupInit {
  master_address: string;
  master_port: number;
  rank_offset: number;
  world_size: number;
}

/** What the generators receive: vLLM's NCCL `update_info` names, dtypes and shapes. */
export interface WeightLayout {
  names: string[];
  dtype_names: string[];
  shapes: number[][];
}

/** How the trainer packs its broadcast; both sides must use the same values. */
export interface Packing {
  packed: boolean;
  packed_buffer_size_bytes?: number;
  packed_num_buffers?: number;
}

/**
 * The trainer's `WeightsReady.update_info_json`: the layout plus its
 * packing, in the shape vLLM ≤ 0.25 took as `update_info`.
 */
export type UpdateInfo = WeightLayout & Partial<Packing> & { [extra: string]: unknown };

/**
 * Where a generator's vLLM takes the packing settings of an NCCL transfer.
 * - `init`: in `init_info` at `/init_weight_transfer_engine`, with
 *   `update_info` holding only names, dtypes and shapes (current vLLM:
 *   `NCCLWeightTransferInitInfo` in
 *   `vllm/backends/distributed/weight_transfer/nccl_common.py`);
 * - `update`: in every `update_info` (vLLM ≤ 0.25, the releases TRL's
 *   async GRPO pins; `NCCLWeightTransferUpdateInfo` in
 *   `vllm/distributed/weight_transfer/nccl_engine.py`).
 * Either release refuses the other's fields (its info dataclass is built
 * with `**dict`), which is how the init call tells them apart.
 */
export type PackingPlacement = 'init' | 'update';

/** Splits the trainer's update info into what every vLLM takes and the packing. */
export function splitUpdateInfo(info: UpdateInfo): { layout: WeightLayout; packing: Packing } {
  // vLLM's own default when `packed` is absent: one broadcast per tensor.
  const packing: Packing = { packed: info.packed ?? false };
  if (typeof info.packed_buffer_size_bytes === 'number') packing.packed_buffer_size_bytes = info.packed_buffer_size_bytes;
  if (typeof info.packed_num_buffers === 'number') packing.packed_num_buffers = info.packed_num_buffers;
  return { layout: { names: info.names, dtype_names: info.dtype_names, shapes: info.shapes }, packing };
}

/** A generator answered, with an error status (as opposed to not answering in time). */
export class GeneratorAnswerError extends TandemError {
  constructor(
    readonly status: number,
    readonly body: string,
    message: string,
  ) {
    super(ErrorCode.Unavailable, message);
  }
}

/**
 * How busy a generator is: the simulator reports cumulative busy seconds
 * (`GET /tandem/stats`); vLLM reports the requests it is running
 * (`vllm:num_requests_running` on `GET /metrics`).
 */
export interface GeneratorLoad {
  busySeconds?: number;
  running?: number;
}

/** Admin client for one generator. */
export interface VllmAdmin {
  health(deadlineMs: number): Promise<void>;
  load(deadlineMs: number): Promise<GeneratorLoad>;
  worldSize(deadlineMs: number): Promise<number>;
  /**
   * Joins the generator to the transfer group, giving it the packing where
   * its vLLM takes it; returns that placement (tried as `init` first, then
   * as `update` when the generator refuses the packing fields at once).
   */
  initWeightTransferEngine(init: TransferGroupInit, packing: Packing, deadlineMs: number): Promise<PackingPlacement>;
  /** `mode=keep` freezes in-flight requests; `wait` drains them first. */
  pause(mode: 'keep' | 'wait', deadlineMs: number): Promise<void>;
  resume(deadlineMs: number): Promise<void>;
  startWeightUpdate(deadlineMs: number): Promise<void>;
  /** Receives one broadcast; the packing goes along when the generator takes it per update. */
  updateWeights(layout: WeightLayout, packing: Packing, placement: PackingPlacement, version: number, deadlineMs: number): Promise<void>;
  finishWeightUpdate(version: number, deadlineMs: number): Promise<void>;
}

/** Creates the admin client of the generator at `baseUrl`. */
export function vllmAdmin(baseUrl: string, doFetch: typeof fetch = fetch): VllmAdmin {
  async function call(method: 'GET' | 'POST', path: string, body: unknown, deadlineMs: number): Promise<unknown> {
    let res: Response;
    let text: string;
    try {
      res = await doFetch(`${baseUrl}${path}`, {
        method,
        ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) } : {}),
        signal: AbortSignal.timeout(Math.max(1, deadlineMs)),
      });
      text = await res.text();
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      throw new TandemError(
        timedOut ? ErrorCode.DeadlineExceeded : ErrorCode.Unavailable,
        `${method} ${baseUrl}${path} ${timedOut ? `missed its ${deadlineMs} ms deadline` : `failed: ${(err as Error).message}`}`,
        { cause: err },
      );
    }
    if (!res.ok) {
      throw new GeneratorAnswerError(res.status, text, `${method} ${baseUrl}${path} answered ${res.status}: ${text.slice(0, 200)}`);
    }
    try {
      return text === '' ? {} : JSON.parse(text);
    } catch {
      return {};
    }
  }
  return {
    health: async (d) => {
      await call('GET', '/health', undefined, d);
    },
    load: async (d) => {
      try {
        const stats = (await call('GET', '/tandem/stats', undefined, d)) as { engine?: { busySeconds?: unknown } };
        if (typeof stats.engine?.busySeconds === 'number') return { busySeconds: stats.engine.busySeconds };
      } catch {
        // Not the simulator: read vLLM's Prometheus metrics instead.
      }
      const res = await doFetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(Math.max(1, d)) });
      const text = await res.text();
      const m = /^vllm:num_requests_running(?:\{[^}]*\})?\s+([0-9.eE+-]+)/m.exec(text);
      return m ? { running: Number(m[1]) } : {};
    },
    worldSize: async (d) => {
      const body = (await call('GET', '/get_world_size', undefined, d)) as { world_size?: unknown };
      return typeof body.world_size === 'number' && body.world_size > 0 ? body.world_size : 1;
    },
    initWeightTransferEngine: async (init, packing, d) => {
      const startedAt = Date.now();
      try {
        await call('POST', '/init_weight_transfer_engine', { init_info: { ...init, ...packing } }, d);
        return 'init';
      } catch (err) {
        // An older vLLM refuses the packing fields before it joins the
        // group (a parse error, answered at once), so the rendezvous is
        // still open for the second try; anything else is a real failure.
        // Its answer names init_info (vLLM's "Invalid init_info ..."), or is
        // a bare error without a body (a server without the detailed error
        // handler); a deadline or a connection failure is not a refusal.
        const refused = err instanceof GeneratorAnswerError && (/init_info|unexpected keyword argument/i.test(err.body) || err.body.trim() === '');
        if (!refused) throw err;
        await call('POST', '/init_weight_transfer_engine', { init_info: init }, Math.max(1, d - (Date.now() - startedAt)));
        return 'update';
      }
    },
    pause: async (mode, d) => {
      await call('POST', `/pause?mode=${mode}`, {}, d);
    },
    resume: async (d) => {
      await call('POST', '/resume', {}, d);
    },
    startWeightUpdate: async (d) => {
      await call('POST', '/start_weight_update', { is_checkpoint_format: true }, d);
    },
    updateWeights: async (layout, packing, placement, version, d) => {
      const updateInfo = placement === 'update' ? { ...layout, ...packing } : layout;
      await call('POST', '/update_weights', { update_info: updateInfo, tandem_policy_version: version }, d);
    },
    finishWeightUpdate: async (version, d) => {
      await call('POST', '/finish_weight_update', { weight_version: String(version), tandem_policy_version: version }, d);
    },
  };
}
