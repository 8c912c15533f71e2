/**
 * A small PromQL reader for checking dashboards and alert rules against the
 * metrics catalog: which series names and which label names an expression
 * uses. Not a parser: it knows the lexical shape of PromQL (strings, label
 * matchers, ranges, grouping clauses, function calls) well enough to tell a
 * series name from a function, keyword, number, duration or Grafana variable.
 */

/** Words that are PromQL syntax, never series names. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'atan2', 'inf', 'nan', 'start', 'end']);
const STRING = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** One `name{label op "value", …}` selector. */
export interface Selector {
  name: string;
  matchers: Array<{ label: string; op: string; value: string }>;
}

/** What one expression refers to. */
export interface PromqlRefs {
  /** Series names (sorted, unique). */
  names: string[];
  /** Selectors with their label matchers (including `{…}` without a name: name ''). */
  selectors: Selector[];
  /** Label names in by/without/on/ignoring/group_left/group_right clauses. */
  groupingLabels: string[];
}

/** The series names, selectors and grouping labels of a PromQL expression. */
export function promqlRefs(expr: string): PromqlRefs {
  const selectors: Selector[] = [];
  // Selectors first, on the raw text: label values are strings and may hold anything.
  const selectorRe = /([a-zA-Z_:][\w:]*)?\s*\{((?:[^}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*)\}/g;
  for (const m of expr.matchAll(selectorRe)) {
    const matchers: Selector['matchers'] = [];
    for (const mm of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/g)) {
      matchers.push({ label: mm[1] as string, op: mm[2] as string, value: (mm[3] as string).slice(1, -1) });
    }
    selectors.push({ name: m[1] ?? '', matchers });
  }
  let text = expr.replace(STRING, '""');
  text = text.replace(/\{[^}]*\}/g, ' ');
  text = text.replace(/\[[^\]]*\]/g, ' ');
  const groupingLabels: string[] = [];
  text = text.replace(GROUPING, (_all, _kw: string, labels: string) => {
    for (const l of labels.split(',')) if (l.trim() !== '') groupingLabels.push(l.trim());
    return ' ';
  });
  const names = new Set<string>();
  // Grafana variables, numbers and durations (5m, 1e3, 0x1f) are consumed
  // whole so that their letters are not read as names.
  const token = /\$\{?\w+\}?|0x[0-9a-f]+|\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])*|([a-zA-Z_:][\w:]*)(\s*\()?/gi;
  for (const m of text.matchAll(token)) {
    const word = m[1];
    if (word === undefined || m[2] !== undefined) continue; // not a word, or a function call
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return { names: [...names].sort(), selectors, groupingLabels: [...new Set(groupingLabels)].sort() };
}

/** One metric as the catalog lists it (the fields this check needs). */
export interface CatalogMetric {
  name: string;
  type: string;
  labels: string[];
}

/** Series every Prometheus has for its scrape targets. */
const PROMETHEUS_SERIES: Record<string, string[]> = { up: [] };
/** Target labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

/**
 * The series names a catalog allows, with their labels: a counter or gauge
 * by its name, a histogram only as `_bucket` (with `le`), `_sum`, `_count`
 * (a classic histogram has no series of its bare name).
 */
export function allowedSeries(catalog: CatalogMetric[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of catalog) {
    const labels = [...m.labels, ...TARGET_LABELS];
    if (m.type === 'histogram' || m.type === 'summary') {
      if (m.type === 'histogram') out.set(`${m.name}_bucket`, [...labels, 'le']);
      else out.set(m.name, [...labels, 'quantile']);
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else {
      out.set(m.name, labels);
    }
  }
  for (const [name, labels] of Object.entries(PROMETHEUS_SERIES)) out.set(name, [...labels, ...TARGET_LABELS]);
  return out;
}

/**
 * Problems of one expression against the allowed series: unknown names,
 * labels a selector matches that its series does not have, and grouping
 * labels that none of the expression's series has. Empty when it is fine.
 */
export function checkExpression(expr: string, allowed: Map<string, string[]>): string[] {
  const refs = promqlRefs(expr);
  const problems: string[] = [];
  const known = new Set<string>();
  for (const name of refs.names) {
    const labels = allowed.get(name);
    if (!labels) problems.push(`unknown series ${name}`);
    else for (const l of labels) known.add(l);
  }
  for (const s of refs.selectors) {
    const labels = allowed.get(s.name);
    if (!labels) continue; // reported above (or a bare {…}, which names no series)
    for (const m of s.matchers) if (m.label !== '__name__' && !labels.includes(m.label)) problems.push(`${s.name} has no label ${m.label}`);
  }
  for (const l of refs.groupingLabels) if (!known.has(l)) problems.push(`no series in the expression has label ${l} (grouping)`);
  return problems;
}
