#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from --cpu-prof): self time by function and
// by file, highest first. `node bench/lib/profile-summary.mjs <file> [top]`.
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fnTime = new Map();
const fileTime = new Map();
for (const [id, us] of self) {
  const cf = byId.get(id).callFrame;
  const url = cf.url.replace(/^file:\/\//, '').replace(/.*node_modules\/\.pnpm\/([^/]+)\/node_modules\//, '$1:').replace(/^\/work\/main\//, '');
  const fn = `${cf.functionName || '(anonymous)'} ${url}:${cf.lineNumber + 1}`;
  fnTime.set(fn, (fnTime.get(fn) ?? 0) + us);
  const f = url || `(${cf.functionName})`;
  fileTime.set(f, (fileTime.get(f) ?? 0) + us);
}
const show = (title, m) => {
  process.stdout.write(`\n${title} (total ${(total / 1000).toFixed(0)} ms)\n`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}\n`);
  }
};
show('self time by function', fnTime);
show('self time by file', fileTime);

// With a third argument, the callers (two levels up) of the functions of that name, by self time.
const target = process.argv[4];
if (target) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const chains = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (n.callFrame.functionName !== target) continue;
    const names = [];
    let p = parent.get(id);
    for (let i = 0; i < 3 && p !== undefined; i++, p = parent.get(p)) {
      const cf = byId.get(p).callFrame;
      names.push(`${cf.functionName || '(anonymous)'}@${cf.url.split('/').pop()}:${cf.lineNumber + 1}`);
    }
    const key = names.join(' < ');
    chains.set(key, (chains.get(key) ?? 0) + us);
  }
  process.stdout.write(`\ncallers of ${target}\n`);
  for (const [k, us] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 10)) process.stdout.write(`${(us / 1000).toFixed(0).padStart(6)} ms  ${k}\n`);
}
