import { readFileSync, realpathSync } from 'node:fs';
import { sep } from 'node:path';
import { ErrorCode, TandemError } from '@tandem/common';
import { MAX_PROMPT_CHARS, type RunSpec } from '@tandem/run-spec';

/** One prompt of a dataset. */
export interface Prompt {
  text: string;
  answer?: string;
  tokenIds?: number[];
}

/** A dataset, indexed by draw number (cycling when the draws exceed its size). */
export interface PromptSource {
  readonly size: number;
  /** The prompt of draw `n` (n ≥ 0); the dataset cycles. */
  get(n: number): Prompt;
}

/**
 * Which files a `jsonl` dataset may name on the control plane's filesystem:
 * those under `dirs`; with no `dirs`, any file unless `dirsRequired`.
 */
export interface DatasetFilePolicy {
  dirs?: readonly string[];
  dirsRequired: boolean;
}

/**
 * Refuses a `jsonl` path outside the policy's directories (after resolving
 * symlinks and `..`), so that an API caller cannot make the control plane
 * read arbitrary files.
 */
export function checkDatasetPath(path: string, policy: DatasetFilePolicy): void {
  const refuse = (message: string): never => {
    throw TandemError.invalid('dataset', [{ path: 'dataset.path', message }]);
  };
  if (!policy.dirs || policy.dirs.length === 0) {
    if (policy.dirsRequired) refuse('reading files on the control plane is off while authentication is on: set TANDEM_DATASET_DIRS to the directories that datasets may come from');
    return;
  }
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return refuse(`${path} cannot be read`);
  }
  const inside = policy.dirs.some((dir) => {
    let root: string;
    try {
      root = realpathSync(dir);
    } catch {
      return false;
    }
    return real.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
  });
  if (!inside) refuse(`${path} is outside the directories datasets may be read from (TANDEM_DATASET_DIRS: ${policy.dirs.join(':')})`);
}

/** Builds the prompt source a run spec names. */
export function promptSourceFor(dataset: RunSpec['dataset']): PromptSource {
  switch (dataset.source) {
    case 'builtin':
      return arithmeticPrompts(dataset.size, dataset.seed);
    case 'inline':
      return fromList(dataset.prompts.map((p) => ({ text: p.prompt, answer: p.answer, tokenIds: p.promptTokenIds })));
    case 'jsonl':
      return fromList(readJsonl(dataset.path, dataset.promptField, dataset.answerField));
  }
}

/**
 * Generated arithmetic questions ("What is 37 + 45?") with numeric answers:
 * the demo's verifiable-reward dataset. Deterministic in (seed, index).
 */
export function arithmeticPrompts(size: number, seed: number): PromptSource {
  return {
    size,
    get(n) {
      const i = n % size;
      const rand = mulberry32(hash32(seed, i));
      const a = 1 + Math.floor(rand() * 99);
      const b = 1 + Math.floor(rand() * 99);
      const mul = rand() < 0.3;
      return { text: `What is ${a} ${mul ? '*' : '+'} ${b}? Answer with the number only.`, answer: String(mul ? a * b : a + b) };
    },
  };
}

function fromList(prompts: Prompt[]): PromptSource {
  return {
    size: prompts.length,
    get: (n) => prompts[n % prompts.length] as Prompt,
  };
}

function readJsonl(path: string, promptField: string, answerField: string): Prompt[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TandemError(ErrorCode.InvalidArgument, `dataset.path ${path} cannot be read`, { cause: err });
  }
  const out: Prompt[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw TandemError.invalid('dataset', [{ path: `dataset.path:${i + 1}`, message: 'line is not valid JSON' }]);
    }
    const obj = (typeof row === 'object' && row !== null ? row : {}) as Record<string, unknown>;
    const prompt = obj[promptField];
    if (typeof prompt !== 'string' || prompt === '') {
      throw TandemError.invalid('dataset', [{ path: `dataset.path:${i + 1}.${promptField}`, message: 'missing or not a string' }]);
    }
    const answer = obj[answerField];
    const answerText = answer === undefined ? undefined : String(answer);
    // The same limits as inline prompts: a file is no way around them.
    if (prompt.length > MAX_PROMPT_CHARS || (answerText?.length ?? 0) > MAX_PROMPT_CHARS) {
      const field = prompt.length > MAX_PROMPT_CHARS ? promptField : answerField;
      throw TandemError.invalid('dataset', [{ path: `dataset.path:${i + 1}.${field}`, message: `longer than ${MAX_PROMPT_CHARS} characters` }]);
    }
    out.push({ text: prompt, answer: answerText });
  });
  if (out.length === 0) throw TandemError.invalid('dataset', [{ path: 'dataset.path', message: 'file has no prompts' }]);
  return out;
}

function hash32(a: number, b: number): number {
  let h = (a * 0x9e3779b1) ^ (b + 0x7f4a7c15);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
