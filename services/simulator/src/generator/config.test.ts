import { describe, expect, it } from 'vitest';
import { TandemError } from '@tandem/common';
import { flagRows } from '../process-flags.js';
import { GENERATOR_FLAGS, generatorHelp, loadGeneratorProcessConfig, resolveGeneratorConfig } from './config.js';

describe('generator config', () => {
  it('has working defaults', () => {
    const c = resolveGeneratorConfig();
    expect(c).toMatchObject({ timeScale: 1, whilePaused: 'wait', maxModelLen: 4096 });
    expect(c.throughput.maxNumSeqs).toBe(256);
    expect(c.faults.dieAfterRequests).toBeNull();
  });

  it('rejects fault fractions that sum past 1, naming the field', () => {
    try {
      resolveGeneratorConfig({ faults: { errorFraction: 0.6, hangFraction: 0.6 } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TandemError);
      expect((err as TandemError).fieldViolations[0]?.path).toBe('faults.errorFraction');
    }
  });

  it('reads flags over environment variables', () => {
    const c = loadGeneratorProcessConfig({
      argv: ['--port', '0', '--time-scale=0.01', '--seed', '7', '--error-fraction', '0.25'],
      env: { TANDEM_SIM_SEED: '3', TANDEM_SIM_MODEL: 'm', TANDEM_SIM_HOST: '0.0.0.0' },
    });
    expect(c).toMatchObject({ host: '0.0.0.0', port: 0, logLevel: 'info' });
    expect(c.generator).toMatchObject({ seed: 7, timeScale: 0.01, model: 'm' });
    expect(c.generator.faults.errorFraction).toBe(0.25);
  });

  it('defaults to 127.0.0.1:8000 and rejects unknown flags and bad values', () => {
    expect(loadGeneratorProcessConfig({ argv: [], env: {} })).toMatchObject({ host: '127.0.0.1', port: 8000 });
    expect(() => loadGeneratorProcessConfig({ argv: ['--nope', '1'], env: {} })).toThrow(/unknown flag --nope/);
    expect(() => loadGeneratorProcessConfig({ argv: ['--time-scale', 'fast'], env: {} })).toThrow(/--time-scale "fast"/);
  });
});

describe('generator flags and --help', () => {
  const flags = Object.entries(GENERATOR_FLAGS.flags);

  it('--help lists every flag the parser knows, with its variable, default and meaning', () => {
    const lines = generatorHelp().split('\n');
    expect(flags.length).toBeGreaterThan(20);
    for (const [name, spec] of flags) {
      const at = lines.findIndex((l) => l.trimStart().startsWith(`--${name} `));
      expect(at, `--${name} is missing from --help`).toBeGreaterThan(-1);
      expect(lines[at]).toContain(spec.env);
      expect(lines[at]).toMatch(/default: \S/);
      expect(lines[at + 1]?.trim(), `--${name} has no meaning in --help`).toMatch(/\w/);
    }
  });

  it('--help shows the defaults the parser applies', () => {
    const defaults = loadGeneratorProcessConfig({ argv: [], env: {} }).generator as unknown as Record<string, unknown>;
    for (const row of flagRows(GENERATOR_FLAGS)) {
      const spec = GENERATOR_FLAGS.flags[row.name];
      if (spec?.path === undefined) continue;
      const value = spec.path.reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], defaults);
      expect(row.default, `--${row.name}`).toBe(value === null || value === undefined ? 'unset' : String(value));
    }
  });

  it('a bad value, by flag or by variable, names the flag or the variable', () => {
    for (const [name, spec] of flags) {
      const byFlag = errorOf(() => loadGeneratorProcessConfig({ argv: [`--${name}`, 'bogus'], env: {} }));
      const byEnv = errorOf(() => loadGeneratorProcessConfig({ argv: [], env: { [spec.env]: 'bogus' } }));
      // Some text flags take any text; every other flag must refuse "bogus".
      if (spec.kind !== 'string' || byFlag !== undefined) expect(byFlag, `--${name}`).toContain(`: --${name} "bogus": `);
      if (spec.kind !== 'string' || byEnv !== undefined) expect(byEnv, spec.env).toContain(`: ${spec.env}="bogus": `);
    }
    expect(errorOf(() => loadGeneratorProcessConfig({ argv: ['--while-paused', 'later'], env: {} }))).toMatch(/^invalid generator flags: --while-paused "later": /);
    expect(errorOf(() => loadGeneratorProcessConfig({ argv: ['--port', '70000'], env: {} }))).toMatch(/^invalid generator flags: --port "70000": /);
  });
});

function errorOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
