// Helpers shared by the benchmarks: arguments, machine description, timing,
// statistics, seeded randomness, per-process CPU accounting and child
// processes. Benchmarks print exactly one JSON object on stdout; everything
// else (progress, children's output) goes to stderr.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Progress line on stderr. */
export function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes of one machine. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function round(x, digits = 3) {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Nearest-rank percentile; 0 for no values. */
export function percentile(values, p) {
  if (values.length === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function median(values) {
  return percentile(values, 50);
}

/** Least-squares slope of log(y) over log(x): the growth exponent (1 = linear). */
export function logLogSlope(xs, ys) {
  const pts = xs.map((x, i) => [Math.log(x), Math.log(Math.max(ys[i], 1e-9))]);
  const n = pts.length;
  const mx = pts.reduce((s, p) => s + p[0], 0) / n;
  const my = pts.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of pts) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** mulberry32: a small seeded PRNG, so every workload is the same on every run. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let clockTicks;
/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid) {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicks;
}

/** Minor page faults a process has taken so far (/proc/<pid>/stat field 10). */
export function minorFaults(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

/** Resident set size now and at its peak (VmHWM), in MiB, from /proc/<pid>/status. */
export function memoryMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rssMiB: kib('VmRSS') / 1024, peakRssMiB: kib('VmHWM') / 1024 };
}

/** 1-minute load average. */
export function loadAverage() {
  return round(os.loadavg()[0], 2);
}

/** The machine a result came from. */
export function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let redis = 'unknown';
  try {
    redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version']).toString())?.[1] ?? redis;
  } catch {
    // redis-server missing: the benchmark that needs it fails with its own message.
  }
  return {
    nproc: Number(execFileSync('nproc').toString().trim()),
    cpuModel: model,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    redisServer: redis,
    kernel: os.release(),
    loadAverage1mAtStart: loadAverage(),
  };
}

/** Node flags for child processes: `BENCH_CPU_PROF=<dir>` profiles every child with --cpu-prof. */
export function nodeFlags() {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

const children = new Set();

/**
 * Registers a process this benchmark started (children, redis-server) so
 * that it is killed if the benchmark exits without stopping it (a crash,
 * Ctrl-C, a CI timeout): nothing is left running.
 */
export function ownChild(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killChildren() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
process.once('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killChildren();
    process.exit(130);
  });
}

/**
 * Forks a bench child (an .mjs under bench/lib) with an IPC channel. Its
 * stdout goes to our stderr, so our stdout carries only the result.
 */
export function forkChild(script, { env = {}, args = [] } = {}) {
  const child = spawn(process.execPath, [...nodeFlags(), fileURLToPath(new URL(script, import.meta.url)), ...args], {
    stdio: ['ignore', 2, 2, 'ipc'],
    env: { ...process.env, ...env },
  });
  return ownChild(child);
}

/** Resolves with the first IPC message from `child` that satisfies `match`. */
export function nextMessage(child, match, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`child ${child.pid} sent no matching message within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (msg) => {
      if (!match(msg)) return;
      cleanup();
      resolve(msg);
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`child ${child.pid} exited (${code ?? signal}) before sending the expected message`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Stops a child we started (SIGTERM, then SIGKILL after a grace period). */
export async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  // A child that is finishing on its own (writing a --cpu-prof profile) gets a moment first.
  await Promise.race([gone, sleep(1000)]);
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}
