/**
 * Kubernetes label selectors in their string form (`a=b,c!=d,e in (x,y),!f,g`),
 * parsed and matched. The fake apiserver filters lists and watches with it;
 * the controller builds selectors with {@link formatSelector}.
 */

/** One requirement of a selector. */
export type Requirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'notexists'; key: string };

/** Parses a selector; throws on syntax errors (the apiserver answers 400). */
export function parseSelector(text: string): Requirement[] {
  const out: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    const s = part.trim();
    if (s === '') continue;
    let m = /^([^\s=!(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(s);
    if (m) {
      const values = (m[3] as string).split(',').map((v) => v.trim()).filter((v) => v !== '');
      out.push({ op: m[2] as 'in' | 'notin', key: m[1] as string, values });
      continue;
    }
    m = /^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(s);
    if (m) {
      out.push({ op: m[2] === '!=' ? 'neq' : 'eq', key: m[1] as string, value: m[3] as string });
      continue;
    }
    m = /^!\s*([^\s=!(),]+)$/.exec(s);
    if (m) {
      out.push({ op: 'notexists', key: m[1] as string });
      continue;
    }
    m = /^([^\s=!(),]+)$/.exec(s);
    if (m) {
      out.push({ op: 'exists', key: m[1] as string });
      continue;
    }
    throw new Error(`unable to parse requirement: ${JSON.stringify(s)}`);
  }
  return out;
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

/** Whether `labels` satisfy every requirement. */
export function matchesSelector(requirements: Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return requirements.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'eq':
        return has && v === r.value;
      case 'neq':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v as string);
      case 'notin':
        return !has || !r.values.includes(v as string);
      case 'exists':
        return has;
      case 'notexists':
        return !has;
    }
  });
}

/** `{a: 'b', c: 'd'}` → `a=b,c=d`. */
export function formatSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
