/**
 * Rows as left-aligned columns two spaces apart, one string per line
 * (header first, then a rule of dashes when `rule` is set), without
 * trailing blanks: the tables of `tandem runs`, `tandem top` and
 * `tandem chaos`.
 */
export function columnLines(header: readonly string[], rows: readonly (readonly string[])[], options: { indent?: string; rule?: boolean } = {}): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `${options.indent ?? ''}${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  return [line(header), ...(options.rule ? [line(widths.map((w) => '-'.repeat(w)))] : []), ...rows.map(line)];
}
