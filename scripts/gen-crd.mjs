// Writes k8s/crd/rlruns.tandem.dev.yaml from the zod schemas (the RLRun spec
// in packages/run-spec/src/rlrun.ts, the status in
// services/control-plane/src/kubernetes/rlrun-status.ts). Run after the
// build: `pnpm build && pnpm gen:crd`. A test
// (services/control-plane/src/kubernetes/crd/rlrun-crd.test.ts) fails when the
// committed file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { rlrunCrdYaml } = await import(new URL('../services/control-plane/dist/kubernetes/crd/rlrun-crd.js', import.meta.url).href);
const target = `${root}k8s/crd/rlruns.tandem.dev.yaml`;
writeFileSync(target, rlrunCrdYaml());
process.stdout.write(`wrote ${target}\n`);
