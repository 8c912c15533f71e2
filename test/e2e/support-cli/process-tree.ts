import { readFileSync, readdirSync } from 'node:fs';

/** One process as /proc/<pid>/stat describes it. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  /** Executable name (at most 15 characters), e.g. `node`, `redis-server`. */
  comm: string;
  /** R, S, D, Z (zombie), ... */
  state: string;
  /** Start time in clock ticks since boot: with the pid, names the process even if the pid is reused. */
  startTime: number;
  /** The command line, NUL separators replaced by spaces. */
  cmdline: string;
}

/** The process `pid`, or undefined when there is none (Linux /proc). */
export function readProc(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..."; comm may itself contain spaces and parentheses.
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    // Gone between the two reads, or a zombie.
  }
  return {
    pid,
    comm: stat.slice(open + 1, close),
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    startTime: Number(fields[19]),
    cmdline,
  };
}

/** Every process now running (a snapshot of /proc). */
export function allProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProc(Number(name));
    if (info) out.push(info);
  }
  return out;
}

/**
 * All descendants of `rootPid` (children, their children, ...), found by
 * parent pid rather than process group: the local runtime starts its
 * children in their own groups.
 */
export function descendants(rootPid: number): ProcInfo[] {
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of allProcesses()) {
    const list = byParent.get(p.ppid) ?? [];
    list.push(p);
    byParent.set(p.ppid, list);
  }
  const out: ProcInfo[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const child of byParent.get(pid) ?? []) {
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}

/** Whether the very process `p` (same pid and start time) still runs; a zombie does not. */
export function stillRunning(p: ProcInfo): boolean {
  const now = readProc(p.pid);
  return now !== undefined && now.startTime === p.startTime && now.state !== 'Z' && now.state !== 'X';
}
