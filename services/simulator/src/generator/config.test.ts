import { describe, expect, it } from 'vitest';
import { TandemError } from '@tandem/common';
import { loadGeneratorProcessConfig, resolveGeneratorConfig } from './config.js';

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
    expect(() => loadGeneratorProcessConfig({ argv: ['--time-scale', 'fast'], env: {} })).toThrow(/timeScale/);
  });
});
