#!/usr/bin/env node
// Regenerates the plots (docs/benchmarks/*.svg) and the generated tables in
// docs/benchmarks.md from the committed results in bench/results/*.json.
// Tables live between `<!-- bench:<name> -->` and `<!-- /bench:<name> -->`
// markers; the prose around them is written by hand.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { barChart, lineChart } from './lib/svg.mjs';

const results = new URL('./results/', import.meta.url);
const docs = new URL('../docs/', import.meta.url);
const plots = new URL('./benchmarks/', docs);

function load(name) {
  const file = new URL(`${name}.json`, results);
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
}

const f = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : String(x));
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

function machineLine(r) {
  const m = r.machine;
  const during = r.loadAverage1m ? `, ${f(r.loadAverage1m.min, 2)}–${f(r.loadAverage1m.max, 2)} during` : '';
  return (
    `_Measured ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC on ${m.nproc} × ${m.cpuModel}, ${m.memoryGiB} GiB, ` +
    `Node ${m.node}, redis-server ${m.redisServer}, Linux ${m.kernel}; 1-minute load average ${f(m.loadAverage1mAtStart, 2)} at start${during}, ` +
    `${f(m.loadAverage1mAtEnd, 2)} at end (the machine is shared); run took ${f(r.durationSeconds, 0)} s._`
  );
}

const sections = {};
const svgs = {};

const rp = load('rollout-path');
if (rp) {
  const names = { tandem: 'Tandem', bullmq: 'BullMQ (naive, JSON)', raw: 'raw Redis LPUSH/BRPOP' };
  const s = rp.systems;
  sections['rollout-path'] = [
    machineLine(rp),
    '',
    table(
      ['system', 'groups/s', 'MB/s', 'p50 latency (ms)', 'p99 latency (ms)', 'Redis bytes / queued group', 'CPU ms / group (all processes)', 'CPU cores: control plane / Redis / producer / trainer'],
      Object.keys(names).map((k) => [
        names[k],
        f(s[k].groupsPerSecond, 0),
        f(s[k].mbPerSecond, 1),
        f(s[k].latencyP50Ms, 1),
        f(s[k].latencyP99Ms, 1),
        s[k].redisBytesPerQueuedGroup.toLocaleString('en-US'),
        f(s[k].cpuMsPerGroup, 2),
        `${f(s[k].cpuCores.controlPlane, 2)} / ${f(s[k].cpuCores.redis, 2)} / ${f(s[k].cpuCores.producer, 2)} / ${f(s[k].cpuCores.consumer, 2)}`,
      ]),
    ),
    '',
    `**tandemVsBullmq = ${f(rp.tandemVsBullmq, 2)}** (target ≥ 2), **tandemVsRawRedis = ${f(rp.tandemVsRawRedis, 2)}** (target ≥ 0.5), ` +
      `Tandem at ${f(s.tandem.groupsPerSecond, 0)} groups/s (target ≥ 1,000). Medians of ${rp.workload.rounds} rounds of ` +
      `${rp.workload.groups.toLocaleString('en-US')} groups per system; a group is ${rp.workload.groupBinaryBytes.toLocaleString('en-US')} bytes encoded ` +
      `(${rp.workload.groupJsonBytes.toLocaleString('en-US')} as BullMQ's JSON). Per round (groups/s): ` +
      Object.keys(names).map((k) => `${k} ${s[k].rounds.map((x) => f(x.groupsPerSecond, 0)).join(', ')}`).join('; ') +
      '.',
  ].join('\n');
  svgs['rollout-path-throughput'] = barChart({
    title: 'Rollout path: groups/s (64 KiB groups)',
    yLabel: 'groups per second',
    categories: ['throughput'],
    series: Object.keys(names).map((k) => ({ name: names[k], values: [s[k].groupsPerSecond] })),
    refLine: { value: 1000, label: 'target 1,000 groups/s' },
  });
  svgs['rollout-path-latency'] = barChart({
    title: 'Rollout path: enqueue → trainer holds the batch',
    yLabel: 'milliseconds',
    categories: ['p50', 'p99'],
    series: Object.keys(names).map((k) => ({ name: names[k], values: [s[k].latencyP50Ms, s[k].latencyP99Ms] })),
  });
}

const ws = load('weight-sync');
if (ws) {
  const fake = ws.detail.fake;
  const http = ws.detail.http;
  const byN = new Map(http.map((r) => [r.generators, r]));
  sections['weight-sync'] = [
    machineLine(ws),
    '',
    table(
      ['generators', 'overhead p50 (ms)', 'overhead p99 (ms)', 'to published p50 / p99 (ms)', 'HTTP: overhead p50 (ms)', 'HTTP: overhead p99 (ms)'],
      fake.map((r) => [
        String(r.generators),
        f(r.overheadP50Ms, 1),
        f(r.overheadP99Ms, 1),
        `${f(r.toPublishedOverheadP50Ms, 1)} / ${f(r.toPublishedOverheadP99Ms, 1)}`,
        byN.has(r.generators) ? f(byN.get(r.generators).overheadP50Ms, 1) : '—',
        byN.has(r.generators) ? f(byN.get(r.generators).overheadP99Ms, 1) : '—',
      ]),
    ),
    '',
    `Growth exponent (log-log fit of p50 over 8–1,024 generators): **${f(ws.growthExponent, 2)}** with the in-process VllmAdmin ` +
      `(p99: ${f(ws.growthExponentP99, 2)}), ${f(ws.http.growthExponent, 2)} over HTTP. ${ws.workload.syncsPerSize} syncs per size after the ` +
      `group-forming one; transfer time ${ws.workload.transferMs} ms (subtracted).`,
  ].join('\n');
  svgs['weight-sync'] = lineChart({
    title: 'Weight-sync overhead (transfer time excluded)',
    xLabel: 'generators',
    yLabel: 'milliseconds',
    logX: true,
    logY: true,
    series: [
      { name: 'in-process p50', points: fake.map((r) => [r.generators, r.overheadP50Ms]) },
      { name: 'in-process p99', points: fake.map((r) => [r.generators, r.overheadP99Ms]), dashed: true },
      { name: 'HTTP p50', points: http.map((r) => [r.generators, r.overheadP50Ms]) },
      { name: 'HTTP p99', points: http.map((r) => [r.generators, r.overheadP99Ms]), dashed: true },
    ],
    refLine: { value: 50, label: 'target p99 50 ms at 1,024' },
  });
}

const ov = load('overlap');
if (ov) {
  const parts = [machineLine(ov), ''];
  for (const c of ov.configs) {
    parts.push(`**${c.name}** (simulated): ${c.description}. Synchronous phase times: generate ${f(c.syncPhaseSeconds.generate, 2)} s, train ${f(c.syncPhaseSeconds.train, 2)} s per step → ideal speedup **${f(c.idealSpeedup, 2)}×**.`);
    parts.push('');
    parts.push(
      table(
        ['k', 's / step (steady)', 'speedup', 'speedup / ideal', 'trainer idle', 'generators idle', 'dropped stale', 'wall s (total)'],
        c.runs.map((r) => [
          String(r.maxTrajectoryAgeSteps),
          f(r.steadySecondsPerStep, 2),
          `${f(r.speedup, 2)}×`,
          f(r.speedupOverIdeal, 2),
          `${f(r.trainerIdleRatio * 100, 0)}%`,
          `${f(r.generatorIdleRatio * 100, 0)}%`,
          String(r.groupsDroppedStale),
          f(r.wallSeconds, 1),
        ]),
      ),
    );
    parts.push('');
  }
  sections.overlap = parts.join('\n').trimEnd();
  const ks = [...new Set(ov.configs.flatMap((c) => c.runs.map((r) => r.maxTrajectoryAgeSteps)))].filter((k) => k > 0);
  svgs.overlap = barChart({
    title: 'Overlap (simulated): speedup over synchronous, and the ideal',
    yLabel: 'speedup (×)',
    categories: ov.configs.map((c) => c.name),
    series: [
      ...ks.map((k) => ({ name: `k = ${k}`, values: ov.configs.map((c) => c.runs.find((r) => r.maxTrajectoryAgeSteps === k)?.speedup ?? null) })),
      { name: 'ideal', values: ov.configs.map((c) => c.idealSpeedup) },
    ],
  });
}

const cc = load('control-plane-cost');
if (cc) {
  const label = { full: 'full path (admitter + prompt queue + broker)', serving: 'serving only (broker + TrainerService)' };
  sections['control-plane-cost'] = [
    machineLine(cc),
    '',
    table(
      ['path', 'offered groups/s', 'served groups/s', 'control plane cores', 'cores per 1,000 groups/s', 'CPU ms per group', 'page faults per group', 'peak RSS (MiB)', 'p50 / p99 latency (ms)'],
      Object.entries(cc.paths).flatMap(([path, points]) =>
        points.map((p) => [
          label[path] ?? path,
          String(p.offeredGroupsPerSecond),
          f(p.groupsPerSecond, 0),
          f(p.controlPlaneCores, 2),
          f(p.coresPer1000GroupsPerSecond, 2),
          f(p.controlPlaneCpuMsPerGroup, 2),
          f(p.controlPlanePageFaultsPerGroup, 1),
          f(p.controlPlanePeakRssMiB, 0),
          `${f(p.latencyP50Ms, 0)} / ${f(p.latencyP99Ms, 0)}`,
        ]),
      ),
    ),
    '',
    `**${f(cc.coresPer1000GroupsPerSecond, 2)} cores per 1,000 groups/s** on the full path at its highest load, ` +
      `${f(cc.servingCoresPer1000GroupsPerSecond, 2)} for serving only (target ≤ 1); peak RSS ${f(cc.controlPlanePeakRssMiB, 0)} MiB ` +
      `(${f(cc.controlPlaneIdleRssMiB, 0)} MiB idle).`,
  ].join('\n');
  svgs['control-plane-cost'] = lineChart({
    title: 'Control plane CPU per 1,000 groups/s served',
    xLabel: 'groups per second served',
    yLabel: 'cores per 1,000 groups/s',
    series: Object.entries(cc.paths).map(([path, points]) => ({ name: path, points: points.map((p) => [p.groupsPerSecond, p.coresPer1000GroupsPerSecond]) })),
    refLine: { value: 1, label: 'target ≤ 1 core' },
  });
}

const fo = load('failover');
if (fo) {
  sections.failover = [
    machineLine(fo),
    '',
    table(
      ['lease (ms)', 'trials', 'standby leading (ms, median)', 'open runs resumed (ms, median)', 'first step trained after (ms, median)'],
      fo.summary.map((r) => [String(r.leaseMs), String(r.trials), f(r.leadingMsMedian, 0), f(r.resumedMsMedian, 0), f(r.firstStepMsMedian, 0)]),
    ),
    '',
    `Times from the leader's kill -9; renew period ${fo.workload.renewMs} ms; the kill lands after ${fo.workload.killAfterSteps} trained steps. ` +
      `Per trial (leading / resumed / first step, ms): ${fo.trials.map((t) => `${t.leadingMs} / ${t.resumedMs} / ${t.firstStepMs}`).join('; ')}. ${fo.simulated}.`,
  ].join('\n');
}

mkdirSync(plots, { recursive: true });
for (const [name, svg] of Object.entries(svgs)) writeFileSync(new URL(`${name}.svg`, plots), svg);

const docFile = new URL('benchmarks.md', docs);
let doc = readFileSync(docFile, 'utf8');
for (const [name, text] of Object.entries(sections)) {
  const re = new RegExp(`(<!-- bench:${name} -->)[\\s\\S]*?(<!-- /bench:${name} -->)`);
  if (!re.test(doc)) throw new Error(`docs/benchmarks.md has no <!-- bench:${name} --> section`);
  doc = doc.replace(re, (_, open, close) => `${open}\n${text}\n${close}`);
}
writeFileSync(docFile, doc);
process.stderr.write(`wrote ${Object.keys(svgs).length} plots and ${Object.keys(sections).length} tables\n`);
