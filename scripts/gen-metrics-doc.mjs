// Regenerates docs/metrics.md from the control plane's metric definitions.
import { writeFile } from 'node:fs/promises';
import { metricsCatalogMarkdown } from '../services/control-plane/dist/metrics/metrics-catalog.js';

await writeFile(new URL('../docs/metrics.md', import.meta.url), await metricsCatalogMarkdown());
console.log('wrote docs/metrics.md');
