/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Upper bound; a limit, not a measured expectation. */
  timeoutMs: number;
  /** @default 100 */
  intervalMs?: number;
  /** What is awaited, for the failure message. */
  what: string;
}

/**
 * Polls `probe` until it returns a value other than undefined / false and
 * returns that value; fails naming `what` (and the last probe error) after
 * `timeoutMs`.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, options: WaitForOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}

/** Fetches JSON; throws on a non-2xx answer with its body. */
export async function httpJson<T = any>(method: string, url: string, body?: unknown, timeoutMs = 10_000): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any -- API JSON in tests
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}
