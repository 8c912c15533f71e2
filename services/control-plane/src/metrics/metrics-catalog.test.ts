import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { metricsCatalog, metricsCatalogMarkdown } from './metrics-catalog.js';

describe('metrics catalog', () => {
  it('docs/metrics.md matches the metric definitions (run `pnpm gen:metrics-doc`)', async () => {
    const committed = await readFile(new URL('../../../../docs/metrics.md', import.meta.url), 'utf8');
    expect(committed).toBe(await metricsCatalogMarkdown());
  });

  it('labels every metric by run and never per prompt or group', async () => {
    for (const m of await metricsCatalog()) {
      expect(m.labels, m.name).toContain('run');
      expect(m.labels.some((l) => /prompt|group/i.test(l)), m.name).toBe(false);
      expect(m.name).toMatch(/^tandem_[a-z_]+$/);
    }
  });
});
