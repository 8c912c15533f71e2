import { describe, expect, it } from 'vitest';
import { flagRows } from '../process-flags.js';
import { TRAINER_FLAGS, loadTrainerProcessConfig, trainerHelp } from './config.js';

// Reading flags over variables is tested in trainer-report.test.ts; these
// check that --help and the errors cover every flag of the table.
describe('trainer flags and --help', () => {
  const flags = Object.entries(TRAINER_FLAGS.flags);

  it('--help lists every flag and variable the parser knows, with its default and meaning', () => {
    const lines = trainerHelp().split('\n');
    expect(flags.length).toBeGreaterThan(20);
    for (const [name, spec] of flags) {
      const lead = spec.envOnly ? '(environment only)' : `--${name} `;
      const at = lines.findIndex((l) => l.trimStart().startsWith(lead) && l.includes(` ${spec.env} `));
      expect(at, `${spec.env} (--${name}) is missing from --help`).toBeGreaterThan(-1);
      expect(lines[at]).toMatch(/default: \S/);
      expect(lines[at + 1]?.trim(), `--${name} has no meaning in --help`).toMatch(/\w/);
    }
  });

  it('--help shows the defaults the parser applies', () => {
    const defaults = loadTrainerProcessConfig({ argv: ['--run-id', 'r'], env: {} }).trainer as unknown as Record<string, unknown>;
    for (const row of flagRows(TRAINER_FLAGS)) {
      const spec = TRAINER_FLAGS.flags[row.name];
      if (spec?.path === undefined || spec.defaultText !== undefined || row.name === 'run-id') continue;
      const value = spec.path.reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], defaults);
      expect(row.default, `--${row.name}`).toBe(value === null || value === undefined ? 'unset' : String(value));
    }
    expect(flagRows(TRAINER_FLAGS).find((r) => r.name === 'run-id')?.default).toBe('required');
  });

  it('a bad value, by flag or by variable, names the flag or the variable', () => {
    for (const [name, spec] of flags) {
      const byEnv = errorOf(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r'], env: { [spec.env]: 'bogus' } }));
      if (spec.kind !== 'string' || byEnv !== undefined) expect(byEnv, spec.env).toContain(`: ${spec.env}="bogus": `);
      if (spec.envOnly) continue;
      const byFlag = errorOf(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r', `--${name}`, 'bogus'], env: {} }));
      if (spec.kind !== 'string' || byFlag !== undefined) expect(byFlag, `--${name}`).toContain(`: --${name} "bogus": `);
    }
    expect(errorOf(() => loadTrainerProcessConfig({ argv: [], env: {} }))).toBe('invalid trainer flags: --run-id (TANDEM_RUN_ID): required');
    expect(errorOf(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r', '--log-level', 'loud'], env: {} }))).toMatch(
      /^invalid trainer flags: --log-level "loud": /,
    );
  });

  it('refuses environment-only settings as flags, naming the variable', () => {
    expect(errorOf(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r', '--token', 'secret'], env: {} }))).toBe(
      '--token is not a flag: set TANDEM_RUN_TOKEN instead',
    );
    const c = loadTrainerProcessConfig({ argv: ['--run-id', 'r'], env: { TANDEM_RUN_TOKEN: 'secret', TANDEM_TRAINER_TLS: 'true', TANDEM_TLS_CA_FILE: '/ca.pem' } });
    expect(c.trainer).toMatchObject({ token: 'secret', tls: true, caFile: '/ca.pem' });
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
