/** One line of live progress. */
export interface ProgressLine {
  label: string;
  step: number;
  maxSteps: number;
  policyVersion: number;
  queueDepth: number;
  inFlight: number;
  meanAge: number;
  maxAge: number;
  dropped: number;
  generatorBusy: number | undefined;
  trainerBusy: number | undefined;
  tokensPerSecond: number;
  generators: number;
}

/** Renders progress on a terminal (one line rewritten in place) or as periodic lines in a log. */
export class ProgressRenderer {
  private lastPrintMs = 0;
  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly nowMs: () => number,
  ) {}

  render(p: ProgressLine, final = false): void {
    const width = 24;
    const filled = p.maxSteps > 0 ? Math.round((p.step / p.maxSteps) * width) : 0;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const pct = (x: number | undefined): string => (x === undefined ? '  --' : `${Math.round(x * 100).toString().padStart(3)}%`);
    const line =
      `${p.label} ${bar} step ${String(p.step).padStart(3)}/${p.maxSteps} v${p.policyVersion}` +
      ` | queue ${String(p.queueDepth).padStart(3)} in-flight ${String(p.inFlight).padStart(3)}` +
      ` | age mean ${p.meanAge.toFixed(2)} max ${p.maxAge}` +
      ` | dropped ${p.dropped}` +
      ` | gen busy ${pct(p.generatorBusy)} trainer busy ${pct(p.trainerBusy)}` +
      ` | ${formatRate(p.tokensPerSecond)} tok/s | ${p.generators} gen`;
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
      return;
    }
    if (final || this.nowMs() - this.lastPrintMs >= 2000) {
      this.lastPrintMs = this.nowMs();
      this.out.write(`${line}\n`);
    }
  }
}

function formatRate(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0);
}
