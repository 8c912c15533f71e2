/**
 * The simulator's tokenizer. It is NOT the model's tokenizer: it only has to
 * be deterministic and cheap so that string prompts, `/tokenize` and the
 * `text` of completions are consistent with each other.
 *
 * - ids 0, 1, 2 are PAD, BOS, EOS;
 * - text is UTF-8, one token per byte: id = byte + 3 (ids 3..258);
 * - ids ≥ 259 (what the sampler mostly draws) decode to the word ` w<id>`;
 * - chat messages render through a fixed template
 *   `<|role|>\n{content}\n` per message, plus `<|assistant|>\n` when
 *   `add_generation_prompt` is true — a stand-in for the model's own
 *   chat template that real vLLM applies.
 */

/** Reserved ids. */
export const PAD_TOKEN_ID = 0;
export const BOS_TOKEN_ID = 1;
export const EOS_TOKEN_ID = 2;
const BYTE_OFFSET = 3;
const FIRST_WORD_ID = BYTE_OFFSET + 256;

/** Token ids of `text`, with BOS first when `addSpecialTokens`. */
export function encode(text: string, options: { addSpecialTokens: boolean }): number[] {
  const bytes = new TextEncoder().encode(text);
  const ids: number[] = options.addSpecialTokens ? [BOS_TOKEN_ID] : [];
  for (const b of bytes) ids.push(b + BYTE_OFFSET);
  return ids;
}

/** The string of one token (what vLLM puts in `logprobs.tokens`). */
export function tokenString(id: number): string {
  if (id === PAD_TOKEN_ID) return '<pad>';
  if (id === BOS_TOKEN_ID) return '<s>';
  if (id === EOS_TOKEN_ID) return '</s>';
  if (id < FIRST_WORD_ID) {
    const byte = id - BYTE_OFFSET;
    // Printable ASCII decodes to itself; other lone bytes would be invalid UTF-8.
    return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : byte === 0x0a ? '\n' : '\ufffd';
  }
  return ` w${id}`;
}

/** Text of `ids`, skipping special tokens as vLLM does by default. */
export function decode(ids: readonly number[]): string {
  const bytes: number[] = [];
  let out = '';
  const flush = (): void => {
    if (bytes.length > 0) out += new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(bytes));
    bytes.length = 0;
  };
  for (const id of ids) {
    if (id <= EOS_TOKEN_ID) continue;
    if (id < FIRST_WORD_ID) bytes.push(id - BYTE_OFFSET);
    else {
      flush();
      out += ` w${id}`;
    }
  }
  flush();
  return out;
}

/** One chat message as `/tokenize` accepts it (content as a string or text parts). */
export interface ChatMessage {
  role: string;
  content?: string | ReadonlyArray<{ type: string; text?: string | undefined }> | null | undefined;
}

/** Renders messages through the simulator's fixed chat template. */
export function renderChat(
  messages: readonly ChatMessage[],
  options: { addGenerationPrompt: boolean; continueFinalMessage: boolean },
): string {
  let out = '';
  messages.forEach((m, i) => {
    const content =
      typeof m.content === 'string'
        ? m.content
        : (m.content ?? []).map((part) => (part.type === 'text' ? (part.text ?? '') : '')).join('');
    const last = i === messages.length - 1;
    out += `<|${m.role}|>\n${content}`;
    if (!(last && options.continueFinalMessage)) out += '\n';
  });
  if (options.addGenerationPrompt) out += '<|assistant|>\n';
  return out;
}
