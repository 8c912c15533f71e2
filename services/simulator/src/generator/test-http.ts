/**
 * Small HTTP helpers shared by the generator's tests (not used in production
 * code). Real HTTP on 127.0.0.1, no mocking.
 */

/** A decoded answer. `json` is undefined when the body is not JSON. */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/** POSTs `body` as JSON (or nothing) and reads the whole answer. */
export async function post(baseUrl: string, path: string, body?: unknown, signal?: AbortSignal): Promise<HttpAnswer> {
  const init: RequestInit = { method: 'POST', signal: signal ?? null };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  return answer(await fetch(baseUrl + path, init));
}

/** GETs `path`. */
export async function get(baseUrl: string, path: string): Promise<HttpAnswer> {
  return answer(await fetch(baseUrl + path));
}

async function answer(res: Response): Promise<HttpAnswer> {
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Polls `predicate` between event-loop turns (1 ms apart at most) until it
 * holds; throws after `maxTurns` so a broken test fails rather than hangs.
 */
export async function waitFor(predicate: () => boolean, what: string, maxTurns = 5000): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The shape tests read from a completion answer. */
export interface CompletionBody {
  id: string;
  object: string;
  model: string;
  created: number;
  choices: Array<{
    index: number;
    text: string;
    token_ids: number[] | null;
    prompt_token_ids: number[] | null;
    finish_reason: string;
    logprobs: { token_logprobs: number[]; tokens: string[]; top_logprobs: Array<Record<string, number>> } | null;
    tandem_min_policy_version: number | null;
    tandem_max_policy_version: number | null;
  }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Narrows an answer's JSON to a completion body (tests only; fields are then asserted). */
export function completionOf(a: HttpAnswer): CompletionBody {
  if (a.status !== 200) throw new Error(`expected 200, got ${a.status}: ${a.text}`);
  return a.json as CompletionBody;
}
