import { TandemError, type FieldViolation } from '@tandem/common';
import { PromptGroup, type Trajectory } from '@tandem/protocol';
import { ExactWriter, delimitedSize, isPlainVarint, varintSize } from './wire-writer.js';

/**
 * Default largest encoded group: half of Redis's largest bulk string
 * (`proto-max-bulk-len`, 512 MB), so a group can always be stored and
 * served; a trainer must raise its gRPC receive limit to match.
 */
export const MAX_GROUP_PAYLOAD_BYTES = 256 * 1024 * 1024;

/** Limits a finished group is checked against before it is queued. */
export interface GroupLimits {
  /** Completions per group (G). */
  groupSize: number;
  /** Longest allowed completion. */
  maxTokens: number;
  /** Largest encoded group (the rollout worker's TANDEM_MAX_GROUP_BYTES). @default MAX_GROUP_PAYLOAD_BYTES */
  maxGroupBytes?: number;
}

/** A validated, encoded group ready for {@link RolloutQueue.complete}. */
export interface EncodedGroup {
  groupId: string;
  minPolicyVersion: number;
  maxPolicyVersion: number;
  /** Completion tokens in the group. */
  tokens: number;
  /** The encoded tandem.v1.PromptGroup. */
  payload: Buffer;
}

/**
 * Checks a finished group (G completions, token ids and logprobs of equal
 * length, finite non-positive logprobs, honest version stamps) and encodes
 * it. Throws INVALID_ARGUMENT naming each bad field; nothing malformed ever
 * reaches the queue.
 */
export function encodePromptGroup(group: PromptGroup, limits: GroupLimits): EncodedGroup {
  const violations: FieldViolation[] = [];
  if (!group.groupId) violations.push({ path: 'groupId', message: 'required' });
  if (group.trajectories.length !== limits.groupSize) {
    violations.push({
      path: 'trajectories',
      message: `expected ${limits.groupSize} completions (groupSize), got ${group.trajectories.length}`,
    });
  }
  if (group.promptTokenIds.byteLength % 4 !== 0) {
    violations.push({ path: 'promptTokenIds', message: 'byte length is not a multiple of 4 (packed int32)' });
  }
  let tokens = 0;
  let minV = Number.POSITIVE_INFINITY;
  let maxV = Number.NEGATIVE_INFINITY;
  group.trajectories.forEach((t, i) => {
    const path = `trajectories[${i}]`;
    if (t.tokenIds.byteLength % 4 !== 0) {
      violations.push({ path: `${path}.tokenIds`, message: 'byte length is not a multiple of 4 (packed int32)' });
      return;
    }
    const n = t.tokenIds.byteLength / 4;
    if (n > limits.maxTokens) {
      violations.push({ path: `${path}.tokenIds`, message: `${n} tokens exceed maxTokens ${limits.maxTokens}` });
    }
    if (t.logprobs.byteLength !== t.tokenIds.byteLength) {
      violations.push({
        path: `${path}.logprobs`,
        message: `has ${t.logprobs.byteLength / 4} values for ${n} tokens`,
      });
    } else {
      const bad = firstBadLogprob(t.logprobs, n);
      if (bad !== undefined) {
        violations.push({ path: `${path}.logprobs[${bad.index}]`, message: `logprob ${bad.value} is not a finite value <= 0` });
      }
    }
    if (!Number.isFinite(t.reward)) violations.push({ path: `${path}.reward`, message: 'not a finite number' });
    if (!Number.isInteger(t.minPolicyVersion) || !Number.isInteger(t.maxPolicyVersion) || t.minPolicyVersion < 0 || t.minPolicyVersion > t.maxPolicyVersion) {
      violations.push({ path: `${path}.minPolicyVersion`, message: 'versions must be integers with 0 <= min <= max' });
    }
    tokens += n;
    minV = Math.min(minV, t.minPolicyVersion);
    maxV = Math.max(maxV, t.maxPolicyVersion);
  });
  if (group.trajectories.length > 0 && (group.minPolicyVersion !== minV || group.maxPolicyVersion !== maxV)) {
    violations.push({
      path: 'minPolicyVersion',
      message: `group stamps [${group.minPolicyVersion}, ${group.maxPolicyVersion}] differ from its completions' [${minV}, ${maxV}]`,
    });
  }
  if (violations.length > 0) throw TandemError.invalid('prompt group', violations);
  const payload = encodePromptGroupBytes(group);
  const maxBytes = limits.maxGroupBytes ?? MAX_GROUP_PAYLOAD_BYTES;
  if (payload.byteLength > maxBytes) {
    throw TandemError.invalid('prompt group', [
      { path: '', message: `encoded size ${payload.byteLength} bytes exceeds the limit of ${maxBytes} bytes (TANDEM_MAX_GROUP_BYTES)` },
    ]);
  }
  return {
    groupId: group.groupId,
    minPolicyVersion: group.minPolicyVersion,
    maxPolicyVersion: group.maxPolicyVersion,
    tokens,
    payload,
  };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The first of `n` packed little-endian float32 logprobs that fails
 * `lp <= 0` (positive values, +Infinity and NaN). Reads through a
 * Float32Array when the bytes are aligned on a little-endian host (every
 * platform Tandem targets), a DataView otherwise; the same check either way.
 */
function firstBadLogprob(bytes: Uint8Array, n: number): { index: number; value: number } | undefined {
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
    const values = new Float32Array(bytes.buffer, bytes.byteOffset, n);
    for (let j = 0; j < n; j++) {
      const lp = values[j] as number;
      if (!(lp <= 0)) return { index: j, value: lp };
    }
    return undefined;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let j = 0; j < n; j++) {
    const lp = view.getFloat32(j * 4, true);
    if (!(lp <= 0)) return { index: j, value: lp };
  }
  return undefined;
}

/**
 * `PromptGroup.encode(group).finish()`, byte for byte, written once into a
 * buffer of the exact size (see wire-writer.ts); falls back to the generated
 * encoder for values it does not handle (negative int64s).
 */
export function encodePromptGroupBytes(group: PromptGroup): Buffer {
  const fast = encodeExact(group);
  if (fast) return fast;
  const bytes = PromptGroup.encode(group).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Field tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
const T_GROUP_ID = 10;
const T_PROMPT_ID = 18;
const T_TARGET_STEP = 24;
const T_MIN_V = 32;
const T_MAX_V = 40;
const T_PROMPT_TOKENS = 50;
const T_TRAJECTORY = 58;
const T_PROMPT_TEXT = 66;
const TT_TOKEN_IDS = 10;
const TT_LOGPROBS = 18;
const TT_REWARD = 25;
const TT_MIN_V = 32;
const TT_MAX_V = 40;
const TT_FINISH = 50;
const TT_TEXT = 58;
const TT_UNSCORED = 64;

function encodeExact(g: PromptGroup): Buffer | undefined {
  if (!isPlainVarint(g.targetStep) || !isPlainVarint(g.minPolicyVersion) || !isPlainVarint(g.maxPolicyVersion)) return undefined;
  const groupIdLen = Buffer.byteLength(g.groupId, 'utf8');
  const promptIdLen = Buffer.byteLength(g.promptId, 'utf8');
  const promptTextLen = Buffer.byteLength(g.promptText, 'utf8');
  let size = 0;
  if (g.groupId !== '') size += delimitedSize(groupIdLen);
  if (g.promptId !== '') size += delimitedSize(promptIdLen);
  if (g.targetStep !== 0) size += 1 + varintSize(g.targetStep);
  if (g.minPolicyVersion !== 0) size += 1 + varintSize(g.minPolicyVersion);
  if (g.maxPolicyVersion !== 0) size += 1 + varintSize(g.maxPolicyVersion);
  if (g.promptTokenIds.length !== 0) size += delimitedSize(g.promptTokenIds.byteLength);
  const sizes: Array<{ body: number; finish: number; text: number }> = [];
  for (const t of g.trajectories) {
    if (!isPlainVarint(t.minPolicyVersion) || !isPlainVarint(t.maxPolicyVersion)) return undefined;
    const s = { body: 0, finish: Buffer.byteLength(t.finishReason, 'utf8'), text: Buffer.byteLength(t.text, 'utf8') };
    s.body = trajectorySize(t, s.finish, s.text);
    sizes.push(s);
    size += delimitedSize(s.body);
  }
  if (g.promptText !== '') size += delimitedSize(promptTextLen);

  const w = new ExactWriter(size);
  if (g.groupId !== '') w.tag(T_GROUP_ID).string(g.groupId, groupIdLen);
  if (g.promptId !== '') w.tag(T_PROMPT_ID).string(g.promptId, promptIdLen);
  if (g.targetStep !== 0) w.tag(T_TARGET_STEP).varint(g.targetStep);
  if (g.minPolicyVersion !== 0) w.tag(T_MIN_V).varint(g.minPolicyVersion);
  if (g.maxPolicyVersion !== 0) w.tag(T_MAX_V).varint(g.maxPolicyVersion);
  if (g.promptTokenIds.length !== 0) w.tag(T_PROMPT_TOKENS).bytes(g.promptTokenIds);
  g.trajectories.forEach((t, i) => {
    const s = sizes[i] as { body: number; finish: number; text: number };
    w.tag(T_TRAJECTORY).varint(s.body);
    if (t.tokenIds.length !== 0) w.tag(TT_TOKEN_IDS).bytes(t.tokenIds);
    if (t.logprobs.length !== 0) w.tag(TT_LOGPROBS).bytes(t.logprobs);
    if (t.reward !== 0) w.tag(TT_REWARD).double(t.reward);
    if (t.minPolicyVersion !== 0) w.tag(TT_MIN_V).varint(t.minPolicyVersion);
    if (t.maxPolicyVersion !== 0) w.tag(TT_MAX_V).varint(t.maxPolicyVersion);
    if (t.finishReason !== '') w.tag(TT_FINISH).string(t.finishReason, s.finish);
    if (t.text !== '') w.tag(TT_TEXT).string(t.text, s.text);
    if (t.unscored) w.tag(TT_UNSCORED).varint(1);
  });
  if (g.promptText !== '') w.tag(T_PROMPT_TEXT).string(g.promptText, promptTextLen);
  return w.finish();
}

function trajectorySize(t: Trajectory, finishLen: number, textLen: number): number {
  let size = 0;
  if (t.tokenIds.length !== 0) size += delimitedSize(t.tokenIds.byteLength);
  if (t.logprobs.length !== 0) size += delimitedSize(t.logprobs.byteLength);
  if (t.reward !== 0) size += 9;
  if (t.minPolicyVersion !== 0) size += 1 + varintSize(t.minPolicyVersion);
  if (t.maxPolicyVersion !== 0) size += 1 + varintSize(t.maxPolicyVersion);
  if (t.finishReason !== '') size += delimitedSize(finishLen);
  if (t.text !== '') size += delimitedSize(textLen);
  if (t.unscored) size += 2;
  return size;
}
