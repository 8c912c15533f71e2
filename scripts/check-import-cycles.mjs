// Fails on any import cycle between modules of the built packages and
// services (madge over dist/, which mirrors src/ one to one).
import madge from 'madge';
import { existsSync, readdirSync } from 'node:fs';

const roots = ['packages', 'services']
  .flatMap((dir) => readdirSync(dir).map((name) => `${dir}/${name}/dist`))
  .filter((p) => existsSync(p));
if (roots.length === 0) {
  console.error('no dist/ folders: run the build first');
  process.exit(1);
}
const result = await madge(roots, { fileExtensions: ['js'], excludeRegExp: [/\.test\.js$/] });
const cycles = result.circular();
if (cycles.length > 0) {
  console.error(`import cycles found:\n${cycles.map((c) => '  ' + c.join(' -> ')).join('\n')}`);
  process.exit(1);
}
console.log(`no import cycles in ${Object.keys(result.obj()).length} modules`);
