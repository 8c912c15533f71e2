import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sum } from './prometheus-text.js';

describe('Prometheus text parsing', () => {
  it('reads names, labels and values, skipping comments', () => {
    const text = [
      '# HELP tandem_groups_total Prompt groups.',
      '# TYPE tandem_groups_total counter',
      'tandem_groups_total{run="a",outcome="trained"} 12',
      'tandem_groups_total{run="a",outcome="failed"} 1',
      'tandem_groups_total{run="b",outcome="trained"} 5',
      'tandem_trajectory_age_steps_bucket{le="+Inf",run="a"} 13',
      'process_cpu_seconds_total 0.5',
      'weird{msg="a \\"quoted\\" value"} 2',
    ].join('\n');
    const s = parsePrometheusText(text);
    expect(s).toHaveLength(6);
    expect(sum(s, 'tandem_groups_total', { run: 'a' })).toBe(13);
    expect(sum(s, 'tandem_groups_total', { outcome: 'trained' })).toBe(17);
    expect(s.find((x) => x.name === 'tandem_trajectory_age_steps_bucket')?.labels.le).toBe('+Inf');
    expect(s.find((x) => x.name === 'weird')?.labels.msg).toBe('a "quoted" value');
    expect(sum(s, 'process_cpu_seconds_total')).toBe(0.5);
  });
});
