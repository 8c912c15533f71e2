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

/** vLLM's NCCL `update_info`. */
export interface UpdateInfo {
  names: string[];
  dtype_names: string[];
  shapes: number[][];
  packed?: boolean;
  [extra: string]: unknown;
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
  initWeightTransferEngine(init: TransferGroupInit, deadlineMs: number): Promise<void>;
  /** `mode=keep` freezes in-flight requests; `wait` drains them first. */
  pause(mode: 'keep' | 'wait', deadlineMs: number): Promise<void>;
  resume(deadlineMs: number): Promise<void>;
  startWeightUpdate(deadlineMs: number): Promise<void>;
  updateWeights(info: UpdateInfo, version: number, deadlineMs: number): Promise<void>;
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
      throw new TandemError(ErrorCode.Unavailable, `${method} ${baseUrl}${path} answered ${res.status}: ${text.slice(0, 200)}`);
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
    initWeightTransferEngine: async (init, d) => {
      await call('POST', '/init_weight_transfer_engine', { init_info: init }, d);
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
    updateWeights: async (info, version, d) => {
      await call('POST', '/update_weights', { update_info: info, tandem_policy_version: version }, d);
    },
    finishWeightUpdate: async (version, d) => {
      await call('POST', '/finish_weight_update', { weight_version: String(version), tandem_policy_version: version }, d);
    },
  };
}
