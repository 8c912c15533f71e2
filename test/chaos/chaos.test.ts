/**
 * The chaos suite in quick mode: for each scenario its own Redis (AOF on,
 * appendfsync everysec), an in-process control plane with the local
 * runtime (for kill-leader: a leader and a standby control-plane replica as
 * processes, leader election over Redis) and a simulated run with 3
 * generators and 2 rollout workers; at a seeded moment a process is killed
 * with SIGKILL (or Redis is restarted, briefly or for longer than a client
 * retries one command, or the control-plane leader is killed);
 * the run must still succeed, and the audit of Redis's ledger against the
 * trainer's own record of what it trained must find nothing lost, nothing
 * trained twice and nothing older than k trained. The seed is fixed so a
 * failure can be replayed with `tandem chaos --quick --seed 1 --scenario NAME`.
 */
import { describe, expect, it } from 'vitest';
import { CHAOS_SCENARIOS, formatChaosTable, runChaos } from '@tandem/cli';
import { createLogger } from '@tandem/common';

const SEED = 1;
const log = createLogger({ name: 'chaos-test', level: process.env.TANDEM_TEST_LOG_LEVEL ?? 'silent' });

describe('chaos suite (quick)', () => {
  for (const scenario of CHAOS_SCENARIOS) {
    it(`${scenario.name}: the run succeeds and the ledger loses and duplicates nothing`, async () => {
      const report = await runChaos({ mode: 'quick', seed: SEED, scenarios: [scenario.name], log });
      process.stderr.write(formatChaosTable(report));
      const [outcome] = report.scenarios;
      expect(outcome?.problems).toEqual([]);
      expect(outcome).toMatchObject({ name: scenario.name, passed: true, phase: 'Succeeded', lost: 0, duplicated: 0, staleTrained: 0 });
      // The fault really happened mid-run, and the work really went through.
      expect(outcome?.faults).toHaveLength(1);
      expect(outcome?.faults[0]).not.toMatch(/^after step \d+: no live/);
      expect(outcome?.trained).toBeGreaterThan(0);
      expect(outcome?.admitted).toBe((outcome?.trained ?? 0) + (outcome?.droppedStale ?? 0) + (outcome?.failed ?? 0) + (outcome?.cancelled ?? 0));
      if (scenario.controlPlane === 'replicas') {
        // kill-leader: exactly one takeover for the one fault, timed; the
        // killed leader's processes died with it and the new leader started
        // the run's processes afresh, so no role counts a restart.
        expect(outcome?.takeovers).toBe(1);
        expect(outcome?.failovers).toHaveLength(1);
        expect(outcome?.failovers[0]?.firstStepMs).not.toBeNull();
        expect(outcome?.restarts).toEqual({});
      } else if (scenario.name.startsWith('kill-')) {
        const role = scenario.name.slice('kill-'.length);
        expect(outcome?.restarts[role]).toBe(1);
        expect(outcome?.takeovers).toBe(0);
      } else {
        // Redis going away is no reason for any process to exit.
        expect(outcome?.restarts).toEqual({});
      }
    }, 180_000);
  }
});
