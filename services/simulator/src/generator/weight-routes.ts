import { ErrorCode, TandemError } from '@tandem/common';
import type { GeneratorContext, RouteHandler } from './context.js';
import { asRecord, parseJsonBody, readBody, sendDetail, sendErrorFrom, sendJson, sendOpenAiError } from './http-io.js';
import { transferSeconds } from './throughput-model.js';
import type { PauseMode } from './weight-state.js';

/**
 * vLLM's dev-mode RLHF routes (VLLM_SERVER_DEV_MODE=1), mirrored from
 * vllm-project/vllm `vllm/entrypoints/serve/dev/rlhf/api_router.py`: paths,
 * methods, body field names, success bodies and the 400s for missing
 * fields. Tandem extensions are prefixed `tandem_`.
 */

const PAUSE_MODES: readonly PauseMode[] = ['abort', 'wait', 'keep'];

/** Bytes per element of the torch dtype names vLLM resolves with getattr(torch, name). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  float64: 8,
  double: 8,
  float32: 4,
  float: 4,
  float16: 2,
  half: 2,
  bfloat16: 2,
  float8_e4m3fn: 1,
  float8_e4m3fnuz: 1,
  float8_e5m2: 1,
  float8_e5m2fnuz: 1,
  int64: 8,
  long: 8,
  int32: 4,
  int: 4,
  int16: 2,
  short: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** `POST /pause?mode=abort|wait|keep` (vLLM's default mode is `abort`). */
export const pause: RouteHandler = async (ctx, _req, res, url) => {
  const modeText = url.searchParams.get('mode') ?? 'abort';
  const legacyWait = url.searchParams.get('wait_for_inflight_requests') === 'true';
  const mode = PAUSE_MODES.find((m) => m === modeText);
  if (mode === undefined) {
    sendOpenAiError(res, 400, `Input should be 'abort', 'wait' or 'keep', got '${modeText}'`, { param: 'mode' });
    return;
  }
  const effective: PauseMode = legacyWait ? 'wait' : mode;
  ctx.engine.transition(() => ctx.weights.pause(effective));
  if (effective === 'abort') {
    const aborted = ctx.engine.abortAll();
    ctx.log.info({ aborted }, 'paused (abort)');
  } else if (effective === 'wait') {
    await ctx.engine.whenRunningDrained();
    ctx.log.info('paused (wait): in-flight requests drained');
  } else {
    ctx.log.info('paused (keep): in-flight requests frozen');
  }
  sendJson(res, 200, { status: 'paused' });
};

/** `POST /resume`. */
export const resume: RouteHandler = (ctx, _req, res) => {
  ctx.engine.transition(() => ctx.weights.resume());
  ctx.log.info('resumed');
  sendJson(res, 200, { status: 'resumed' });
};

/** `GET /is_paused`. */
export const isPaused: RouteHandler = (ctx, _req, res) => {
  sendJson(res, 200, { is_paused: ctx.weights.paused });
};

/** Reads a JSON object body the way the dev routes do: bad JSON is a 400 `detail`. */
async function readObjectBody(
  ctx: GeneratorContext,
  req: Parameters<RouteHandler>[1],
  res: Parameters<RouteHandler>[2],
): Promise<Record<string, unknown> | undefined> {
  const text = await readBody(req, ctx.config.maxRequestBytes);
  const parsed = parseJsonBody(text);
  if (!parsed.ok) {
    sendDetail(res, 400, 'Invalid JSON format');
    return undefined;
  }
  const body = asRecord(parsed.value);
  if (body === undefined) {
    sendDetail(res, 400, 'Expected a JSON object');
    return undefined;
  }
  return body;
}

/**
 * A Tandem policy version from the body field `tandem_policy_version` or the
 * query parameter of the same name; null when neither is given.
 */
function tandemVersion(body: Record<string, unknown>, url: URL): number | null {
  const raw = body['tandem_policy_version'] ?? url.searchParams.get('tandem_policy_version');
  if (raw === undefined || raw === null) return null;
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw TandemError.invalid('weight update', [
      { path: 'tandem_policy_version', message: `must be a non-negative integer, got ${JSON.stringify(raw)}` },
    ]);
  }
  return n;
}

const GROUP_FIELDS = ['master_address', 'master_port', 'rank_offset', 'world_size'];
const PACKING_FIELDS = ['packed', 'packed_buffer_size_bytes', 'packed_num_buffers'];
const LAYOUT_FIELDS = ['names', 'dtype_names', 'shapes', 'is_checkpoint_format'];

/**
 * vLLM builds its NCCL init and update infos with `Dataclass(**dict)`, so a
 * field the release does not define is a TypeError, answered 500 before
 * anything else happens. Where the packing fields belong depends on the
 * release (config `weightTransfer.packingPlacement`).
 */
function refuseUnknownFields(info: Record<string, unknown>, allowed: readonly string[], what: 'init_info' | 'update_info'): void {
  const unknown = Object.keys(info).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new TandemError(ErrorCode.Internal, `Invalid ${what} for NCCLWeightTransferEngine: unexpected keyword argument '${unknown[0]}'`);
  }
}

/** `POST /init_weight_transfer_engine` with `{"init_info": {...}}`. */
export const initWeightTransferEngine: RouteHandler = async (ctx, req, res) => {
  const body = await readObjectBody(ctx, req, res);
  if (body === undefined) return;
  const initInfo = asRecord(body['init_info']);
  if (body['init_info'] === undefined || body['init_info'] === null) {
    sendDetail(res, 400, "Missing 'init_info' in request body");
    return;
  }
  try {
    if (initInfo === undefined) throw new TandemError(ErrorCode.Internal, 'init_info must be an object');
    const atInit = ctx.config.weightTransfer.packingPlacement === 'init';
    refuseUnknownFields(initInfo, atInit ? [...GROUP_FIELDS, ...PACKING_FIELDS] : GROUP_FIELDS, 'init_info');
    const info = ctx.weights.initTransferEngine(initInfo);
    ctx.log.info({ ...info }, 'weight transfer engine initialised (simulated NCCL group)');
    sendJson(res, 200, { message: 'Weight transfer initialized' });
  } catch (err) {
    sendErrorFrom(res, err);
  }
};

/** `POST /start_weight_update` (TRL sends `{"is_checkpoint_format": true}`; ignored). */
export const startWeightUpdate: RouteHandler = async (ctx, req, res) => {
  const body = await readObjectBody(ctx, req, res);
  if (body === undefined) return;
  try {
    ctx.engine.transition(() => ctx.weights.startUpdate());
    sendJson(res, 200, { message: 'Weight update started' });
  } catch (err) {
    sendErrorFrom(res, err);
  }
};

/** Bytes an NCCL update moves, from `update_info` names/dtype_names/shapes (vLLM's NCCL update info). */
export function updateBytes(updateInfo: Record<string, unknown>, fallbackBytes: number): number {
  const names = updateInfo['names'];
  const dtypes = updateInfo['dtype_names'];
  const shapes = updateInfo['shapes'];
  if (!Array.isArray(names) || !Array.isArray(dtypes) || !Array.isArray(shapes)) {
    // vLLM: NCCLWeightTransferUpdateInfo(**update_info) → TypeError → ValueError → 500.
    throw new TandemError(
      ErrorCode.Internal,
      'Invalid update_info for NCCLWeightTransferEngine: names, dtype_names and shapes are required lists',
    );
  }
  if (dtypes.length !== names.length) {
    throw new TandemError(
      ErrorCode.Internal,
      `\`dtype_names\` should be of the same size as \`names\`: got ${dtypes.length} and ${names.length}`,
    );
  }
  if (shapes.length !== names.length) {
    throw new TandemError(
      ErrorCode.Internal,
      `\`shapes\` should be of the same size as \`names\`: got ${shapes.length} and ${names.length}`,
    );
  }
  if (names.length === 0) return fallbackBytes;
  let bytes = 0;
  dtypes.forEach((dtype, i) => {
    const size = typeof dtype === 'string' ? DTYPE_BYTES[dtype] : undefined;
    if (size === undefined) {
      throw new TandemError(ErrorCode.Internal, `module 'torch' has no attribute '${String(dtype)}'`);
    }
    const shape = shapes[i];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TandemError(ErrorCode.Internal, `shapes[${i}] must be a list of non-negative integers`);
    }
    bytes += size * shape.reduce((a: number, d: number) => a * d, 1);
  });
  return bytes;
}

/**
 * `POST /update_weights` with `{"update_info": {...}}`: blocks for the
 * simulated broadcast time (bytes / bandwidth), during which generation
 * makes no progress. Tandem extension: `tandem_policy_version`.
 */
export const updateWeights: RouteHandler = async (ctx, req, res, url) => {
  const body = await readObjectBody(ctx, req, res);
  if (body === undefined) return;
  if (body['update_info'] === undefined || body['update_info'] === null) {
    sendDetail(res, 400, "Missing 'update_info' in request body");
    return;
  }
  try {
    const updateInfo = asRecord(body['update_info']);
    if (updateInfo === undefined) throw new TandemError(ErrorCode.Internal, 'update_info must be an object');
    const perUpdate = ctx.config.weightTransfer.packingPlacement === 'update';
    refuseUnknownFields(updateInfo, perUpdate ? [...LAYOUT_FIELDS, ...PACKING_FIELDS] : LAYOUT_FIELDS, 'update_info');
    const bytes = updateBytes(updateInfo, ctx.config.weightTransfer.modelBytes);
    const version = tandemVersion(body, url);
    ctx.engine.transition(() => ctx.weights.beginReceive(version));
    const seconds = transferSeconds(bytes, ctx.config.weightTransfer.bandwidthBytesPerSecond);
    try {
      await ctx.clock.sleep(seconds * 1000 * ctx.config.timeScale, ctx.shutdown);
    } finally {
      ctx.engine.transition(() => ctx.weights.endReceive());
    }
    ctx.log.info({ bytes, simulatedSeconds: seconds }, 'weights received (simulated)');
    sendJson(res, 200, { message: 'Weights updated' });
  } catch (err) {
    sendErrorFrom(res, err);
  }
};

/**
 * `POST /finish_weight_update`: publishes the new policy version. Accepts
 * vLLM's optional `weight_version` (string; used when it is an integer) and
 * Tandem's `tandem_policy_version`; otherwise the version goes up by one.
 */
export const finishWeightUpdate: RouteHandler = async (ctx, req, res, url) => {
  const body = await readObjectBody(ctx, req, res);
  if (body === undefined) return;
  try {
    let explicit = tandemVersion(body, url);
    const weightVersion = body['weight_version'];
    if (explicit === null && typeof weightVersion === 'string' && /^\d+$/.test(weightVersion)) {
      explicit = Number(weightVersion);
    }
    const version = ctx.engine.transition(() => ctx.weights.finishUpdate(explicit));
    ctx.log.info({ policyVersion: version }, 'weight update finished');
    sendJson(res, 200, { message: 'Weight update finished', tandem_policy_version: version });
  } catch (err) {
    sendErrorFrom(res, err);
  }
};

/** `GET /weight_info` (newer vLLM): the version as a string, plus Tandem's integer. */
export const weightInfo: RouteHandler = (ctx, _req, res) => {
  const v = ctx.weights.policyVersion;
  sendJson(res, 200, { weight_version: String(v), tandem_policy_version: v });
};

/** `GET /get_world_size[?include_dp=true]`. */
export const getWorldSize: RouteHandler = (ctx, _req, res) => {
  sendJson(res, 200, { world_size: ctx.config.worldSize });
};
