import { columnLines } from '../commands/columns.js';
import type { ChaosReport, FailoverTiming } from './run-chaos.js';

/** The suite's outcome as a text table, one row per scenario, then the faults and problems. */
export function formatChaosTable(report: ChaosReport): string {
  const header = ['scenario', 'result', 'phase', 'admitted', 'trained', 'dropped', 'failed', 'cancelled', 'lost', 'dup', 'stale', 'restarts', 'failover s', 'secs'];
  const rows = report.scenarios.map((s) => [
    s.name,
    s.passed ? 'passed' : 'FAILED',
    s.phase,
    String(s.admitted),
    String(s.trained),
    String(s.droppedStale),
    String(s.failed),
    String(s.cancelled),
    String(s.lost),
    String(s.duplicated),
    String(s.staleTrained),
    Object.entries(s.restarts).map(([role, n]) => `${role} ${n}`).join(', ') || '-',
    s.failovers.map(formatFailover).join(', ') || '-',
    s.wallSeconds.toFixed(1),
  ]);
  let out = `chaos suite (${report.mode}, seed ${report.seed}; simulated generators and trainer)\n`;
  out += columnLines(header, rows, { rule: true }).map((l) => `${l}\n`).join('');
  for (const s of report.scenarios) {
    for (const f of s.faults) out += `  ${s.name}: ${f}\n`;
    for (const p of s.problems) out += `  ${s.name}: problem: ${p}\n`;
  }
  if (report.scenarios.some((s) => s.failovers.length > 0)) {
    out += 'failover s: from the kill -9 of the leader until the standby leads / until the first step trained after it\n';
  }
  out += report.passed ? 'all scenarios passed\n' : 'some scenarios FAILED\n';
  return out;
}

function formatFailover(f: FailoverTiming): string {
  return `${(f.leadingMs / 1000).toFixed(1)}/${f.firstStepMs === null ? 'none' : (f.firstStepMs / 1000).toFixed(1)}`;
}
