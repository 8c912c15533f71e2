import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { GENERATOR_FLAGS } from './generator/config.js';
import { TRAINER_FLAGS } from './trainer/config.js';
import { flagRows, readFlagSet, type FlagSet } from './process-flags.js';

const DOCS = fileURLToPath(new URL('../../../docs/operations.md', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/', import.meta.url));

/** The rows of the table under `#### <title>` in docs/operations.md, as cells without backticks. */
function docsTable(title: string): string[][] {
  const text = readFileSync(DOCS, 'utf8');
  const start = text.indexOf(`\n#### ${title}`);
  expect(start, `docs/operations.md has no "#### ${title}"`).toBeGreaterThan(-1);
  const section = text.slice(start + 1).split(/\n#{2,4} /)[0] ?? '';
  return section
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| flag |'))
    .map((l) => l.slice(1, -1).split(' | ').map((c) => c.trim().replace(/[`()]/g, '')));
}

describe('docs/operations.md, Simulated generator and trainer', () => {
  for (const [title, set] of [
    ['Generator', GENERATOR_FLAGS],
    ['Trainer', TRAINER_FLAGS],
  ] as const) {
    it(`lists every ${title.toLowerCase()} flag with its variable and default, and no other`, () => {
      const rows = docsTable(title);
      const expected = flagRows(set as FlagSet<z.ZodObject, z.ZodObject>);
      for (const r of expected) {
        const row = rows.find((cells) => cells[1] === r.env);
        expect(row, `${r.env} is missing from the docs table`).toBeDefined();
        expect(row?.[0], r.env).toBe(r.flag ?? '—');
        expect(row?.[2], `default of ${r.env}`).toBe(r.default);
      }
      expect(rows.map((cells) => cells[1])).toEqual(expected.map((r) => r.env));
    });
  }
});

describe('readFlagSet', () => {
  const set: FlagSet<z.ZodObject<{ port: z.ZodDefault<z.ZodNumber> }>, z.ZodObject<{ token: z.ZodOptional<z.ZodString> }>> = {
    what: 'test flags',
    processSchema: z.object({ port: z.number().int().default(1) }),
    optionsSchema: z.object({ token: z.string().regex(/^t-/).optional() }),
    flags: {
      port: { env: 'T_PORT', kind: 'number', help: 'port' },
      token: { env: 'T_TOKEN', kind: 'string', path: ['token'], help: 'token', envOnly: true, secret: true },
    },
  };

  it('never echoes a secret value', () => {
    const message = (() => {
      try {
        readFlagSet(set, { argv: [], env: { T_TOKEN: 'hunter2' } });
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toMatch(/^invalid test flags: T_TOKEN: /);
    expect(message).not.toContain('hunter2');
  });

  it('takes a following flag for a forgotten value, not for the value', () => {
    expect(() => readFlagSet(set, { argv: ['--port', '--port', '3'], env: {} })).toThrow('flag --port needs a value');
    expect(() => readFlagSet(set, { argv: ['--port'], env: {} })).toThrow('flag --port needs a value');
    expect(readFlagSet(set, { argv: ['--port', '-3'], env: {} }).process.port).toBe(-3);
    expect(() => readFlagSet(set, { argv: ['port'], env: {} })).toThrow('unexpected argument "port" (see --help)');
  });
});

// The entry points themselves (the compiled dist/*-main.js; `tsc -b` first).
describe.each([
  ['generator-main.js', 'simulated generator', GENERATOR_FLAGS],
  ['trainer-main.js', 'simulated trainer', TRAINER_FLAGS],
] as const)('%s', (script, name, set) => {
  const main = `${DIST}${script}`;
  const run = (args: string[]): ReturnType<typeof spawnSync> => {
    if (!existsSync(main)) throw new Error(`${main} is missing: build first (npx tsc -b services/simulator)`);
    return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000 });
  };

  it.each([['--help'], ['-h']])('%s prints the usage with every flag on stdout and exits 0', (flag) => {
    const r = run(['--time-scale', '1', flag]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Usage: /);
    for (const spec of Object.values(set.flags)) expect(r.stdout).toContain(` ${spec.env} `);
  });

  it('exits 2 with one line naming an unknown flag or a bad value', () => {
    const unknown = run(['--nope', '1']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toBe(`${name}: unknown flag --nope (see --help)\n`);
    const bad = run(['--time-scale', 'soon']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(new RegExp(`^${name}: (INVALID_ARGUMENT: )?invalid \\w+ flags: .*--time-scale "soon": [^\\n]*\\n$`));
  });
});
