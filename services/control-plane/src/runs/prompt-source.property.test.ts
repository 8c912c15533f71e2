import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TandemError } from '@tandem/common';
import { MAX_PROMPT_CHARS } from '@tandem/run-spec';
import { promptSourceFor } from './prompt-source.js';

/**
 * Seeded property test of JSON-lines datasets: any file content either
 * yields prompts that obey the same limits as inline prompts (non-empty
 * text of at most MAX_PROMPT_CHARS characters) or is refused with
 * INVALID_ARGUMENT naming the line and field; nothing else is thrown.
 */

const dir = mkdtempSync(join(tmpdir(), 'tandem-jsonl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileSeq = 0;

const line = fc.oneof(
  fc.record({ prompt: fc.string({ minLength: 1, maxLength: 20 }), answer: fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined }) }).map((o) => JSON.stringify(o)),
  fc.constant(JSON.stringify({ prompt: 'p'.repeat(MAX_PROMPT_CHARS + 1) })),
  fc.constant(JSON.stringify({ prompt: 'p', answer: 'a'.repeat(MAX_PROMPT_CHARS + 1) })),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 30 }).filter((s) => !s.includes('\n')),
  fc.constant(''),
);

describe('JSON-lines datasets (property)', () => {
  it('yield prompts within the inline limits, or are refused naming the line', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
        const path = join(dir, `d${fileSeq++}.jsonl`);
        writeFileSync(path, lines.join('\n'));
        let source;
        try {
          source = promptSourceFor({ source: 'jsonl', path, promptField: 'prompt', answerField: 'answer' });
        } catch (err) {
          expect(err).toBeInstanceOf(TandemError);
          const e = err as TandemError;
          expect(e.code).toBe('INVALID_ARGUMENT');
          expect(e.fieldViolations[0]?.path).toMatch(/^dataset\.path(:\d+(\.(prompt|answer))?)?$/);
          return;
        }
        expect(source.size).toBeGreaterThan(0);
        for (let n = 0; n < source.size; n++) {
          const p = source.get(n);
          expect(p.text.length).toBeGreaterThan(0);
          expect(p.text.length).toBeLessThanOrEqual(MAX_PROMPT_CHARS);
          expect(p.answer?.length ?? 0).toBeLessThanOrEqual(MAX_PROMPT_CHARS);
        }
      }),
      {
        numRuns: 200,
        seed: 515,
        // Found by this property: a file was a way around the inline prompt-length limit.
        examples: [[[JSON.stringify({ prompt: 'p'.repeat(MAX_PROMPT_CHARS + 1) })]]],
      },
    );
  });
});
