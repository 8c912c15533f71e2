/**
 * The body of `res` as text, read at most `limit` bytes far: a body that
 * declares or turns out to be longer is cancelled, and `tooLarge` (given the
 * declared length, when the headers gave one) makes the error to throw.
 * Generator and reward-endpoint answers both go through it, so a
 * misbehaving server cannot make a worker buffer an unbounded body.
 */
export async function readCapped(res: Response, limit: number, tooLarge: (declaredBytes?: number) => Error): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
