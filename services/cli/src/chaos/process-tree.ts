import { readdirSync, readFileSync } from 'node:fs';

/** A process seen in /proc: its pid, and its start time so a reused pid is not taken for it. */
export interface SeenProcess {
  pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22). */
  startTicks: string;
  /** The command line, shortened, for messages. */
  command: string;
}

interface StatLine {
  state: string;
  ppid: number;
  startTicks: string;
}

/** /proc/PID/stat's parent pid and start time; undefined when the process is gone. */
function readStat(pid: number): StatLine | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  const ppid = Number(fields[1]);
  const startTicks = fields[19];
  if (!Number.isInteger(ppid) || startTicks === undefined) return undefined;
  return { state: fields[0] ?? '?', ppid, startTicks };
}

function readCommand(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    return argv.map((a) => a.split('/').slice(-2).join('/')).join(' ').slice(0, 120);
  } catch {
    return '?';
  }
}

/**
 * Every live descendant of `root` (children, their children, …), read from
 * /proc. Empty where there is no /proc (the chaos suite then relies on the
 * children's own parent watch alone, and cannot check it).
 */
export function descendants(root: number): SeenProcess[] {
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return [];
  }
  const childrenOf = new Map<number, Array<{ pid: number; startTicks: string }>>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (!stat) continue;
    const list = childrenOf.get(stat.ppid) ?? [];
    list.push({ pid, startTicks: stat.startTicks });
    childrenOf.set(stat.ppid, list);
  }
  const out: SeenProcess[] = [];
  const queue = [root];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of childrenOf.get(next) ?? []) {
      out.push({ ...child, command: readCommand(child.pid) });
      queue.push(child.pid);
    }
  }
  return out;
}

/** Whether the process seen is still running (the same process: same pid and start time, not a zombie). */
export function stillRunning(p: SeenProcess): boolean {
  const stat = readStat(p.pid);
  return stat !== undefined && stat.startTicks === p.startTicks && stat.state !== 'Z';
}

/**
 * Waits (bounded by `timeoutMs`) for every process in `procs` to be gone,
 * then SIGKILLs those still running. Returns the ones that had to be killed.
 */
export async function reap(procs: readonly SeenProcess[], timeoutMs: number): Promise<SeenProcess[]> {
  const deadline = Date.now() + timeoutMs;
  let left = procs.filter(stillRunning);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = left.filter(stillRunning);
  }
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return left;
}
