import { z } from 'zod';
import { TandemError, formatPath, type FieldViolation } from '@tandem/common';

/**
 * Flags and environment variables of the simulator processes. One table per
 * process drives the parser, `--help` and the errors, and the docs test
 * checks docs/operations.md against it, so a flag cannot be added in one
 * place and forgotten in another. Defaults and enum choices are read from
 * the zod schemas, never restated here.
 */

/** One setting: a flag, its environment variable, and where the value goes. */
export interface FlagSpec {
  /** Read when the flag is absent. */
  env: string;
  /** How the text becomes a value; text that does not convert is passed on as is, so zod names it. */
  kind: 'number' | 'string' | 'boolean';
  /** Path into the options schema, or undefined for a field of the process schema (keyed by flag name). */
  path?: readonly string[];
  /** One line for `--help`. */
  help: string;
  /** Placeholder in `--help`; by kind when unset. */
  arg?: string;
  /** Default shown when the schema's is not what the process uses (the entry point supplies another). */
  defaultText?: string;
  /** Environment only, no flag: secrets must not show in `ps`. */
  envOnly?: boolean;
  /** Never echo the value in an error. */
  secret?: boolean;
}

/** A process's flags and the schemas their values are checked by. */
export interface FlagSet<P extends z.ZodObject, O extends z.ZodObject> {
  /** Keyed by flag name, without the dashes. */
  flags: Readonly<Record<string, FlagSpec>>;
  processSchema: P;
  optionsSchema: O;
  /** Names the thing in errors ("generator flags"). */
  what: string;
}

/** A flag as `--help` and the docs show it. */
export interface FlagRow {
  name: string;
  /** `--name`, or undefined for an environment-only setting. */
  flag: string | undefined;
  env: string;
  arg: string;
  default: string;
  /** The help line, with the allowed values appended for an enum. */
  help: string;
}

/** Whether argv asks for the usage text (`--help` or `-h` anywhere). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/**
 * Reads flags (`--name value` / `--name=value`) over environment variables
 * and validates both schemas. Throws INVALID_ARGUMENT whose violations name
 * the flag or variable a bad value came from; an unknown flag throws a plain
 * Error naming it.
 */
export function readFlagSet<P extends z.ZodObject, O extends z.ZodObject>(
  set: FlagSet<P, O>,
  input: { argv: readonly string[]; env: Record<string, string | undefined> },
): { process: z.output<P>; options: z.output<O> } {
  const given = readFlags(set.flags, input.argv);
  const processFields: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  const labels = new Map<string, string>();
  const unset = new Set<string>();
  for (const [name, spec] of Object.entries(set.flags)) {
    const fromFlag = given.get(name);
    const text = fromFlag ?? input.env[spec.env];
    const key = fieldKey(name, spec);
    if (text === undefined || text === '') {
      labels.set(key, spec.envOnly ? spec.env : `--${name} (${spec.env})`);
      unset.add(key);
      continue;
    }
    const quoted = JSON.stringify(text);
    if (fromFlag !== undefined) labels.set(key, spec.secret ? `--${name}` : `--${name} ${quoted}`);
    else labels.set(key, spec.secret ? spec.env : `${spec.env}=${quoted}`);
    const value = convert(spec.kind, text);
    if (spec.path === undefined) processFields[name] = value;
    else setPath(options, spec.path, value);
  }
  const p = set.processSchema.safeParse(processFields);
  const o = set.optionsSchema.safeParse(options);
  const violations: FieldViolation[] = [
    ...(p.success ? [] : p.error.issues.map((i) => violation(labels, unset, `process:${formatPath(i.path)}`, i))),
    ...(o.success ? [] : o.error.issues.map((i) => violation(labels, unset, formatPath(i.path), i))),
  ];
  if (!p.success || !o.success) throw TandemError.invalid(set.what, violations);
  return { process: p.data, options: o.data };
}

/** The flags as rows: defaults and enum choices come from the schemas. */
export function flagRows(set: FlagSet<z.ZodObject, z.ZodObject>): FlagRow[] {
  return Object.entries(set.flags).map(([name, spec]) => {
    const field = spec.path === undefined ? fieldAt(set.processSchema, [name]) : fieldAt(set.optionsSchema, spec.path);
    if (field === undefined) throw new Error(`flag --${name} points at no schema field`);
    const inner = unwrap(field);
    const choices = inner instanceof z.ZodEnum ? inner.options.map(String) : inner instanceof z.ZodBoolean ? ['true', 'false'] : undefined;
    return {
      name,
      flag: spec.envOnly ? undefined : `--${name}`,
      env: spec.env,
      arg: spec.arg ?? (spec.kind === 'number' ? 'N' : spec.kind === 'boolean' ? 'BOOL' : 'TEXT'),
      default: spec.defaultText ?? defaultOf(field),
      help: choices === undefined ? spec.help : `${spec.help} (${choices.join(', ')})`,
    };
  });
}

/** The `--help` text: `usage` and `intro` above one entry per flag. */
export function formatHelp(set: FlagSet<z.ZodObject, z.ZodObject>, usage: string, intro: string): string {
  const rows = flagRows(set);
  const left = (r: FlagRow): string => (r.flag === undefined ? '(environment only)' : `${r.flag} ${r.arg}`);
  const leftWidth = Math.max(...rows.map((r) => left(r).length));
  const envWidth = Math.max(...rows.map((r) => r.env.length));
  const lines = [
    `Usage: ${usage}`,
    '',
    intro,
    '',
    'Every flag can also be set by its environment variable; a flag wins over its variable.',
    '',
    '  -h, --help',
    '      print this text and exit',
  ];
  for (const r of rows) {
    lines.push(`  ${left(r).padEnd(leftWidth)}  ${r.env.padEnd(envWidth)}  default: ${r.default}`, `      ${r.help}`);
  }
  return `${lines.join('\n')}\n`;
}

function readFlags(flags: Readonly<Record<string, FlagSpec>>, argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}" (see --help)`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (spec === undefined) throw new Error(`unknown flag --${name} (see --help)`);
    if (spec.envOnly) throw new Error(`--${name} is not a flag: set ${spec.env} instead`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
      // `--port --seed 3` is a forgotten value, not a port named "--seed".
      if (value?.startsWith('--')) value = undefined;
    }
    if (value === undefined) throw new Error(`flag --${name} needs a value`);
    out.set(name, value);
  }
  return out;
}

function convert(kind: FlagSpec['kind'], text: string): unknown {
  if (kind === 'number') return text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
  if (kind === 'boolean') return text === 'true' ? true : text === 'false' ? false : text;
  return text;
}

function fieldKey(name: string, spec: FlagSpec): string {
  return spec.path === undefined ? `process:${name}` : spec.path.join('.');
}

function violation(labels: ReadonlyMap<string, string>, unset: ReadonlySet<string>, key: string, issue: z.core.$ZodIssue): FieldViolation {
  // Nothing set and the wrong type: a required setting (zod says "received undefined").
  const message = unset.has(key) && issue.code === 'invalid_type' ? 'required' : issue.message;
  return { path: labels.get(key) ?? key.replace(/^process:/, ''), message };
}

/** The schema of the field at `path`, wrappers (default, optional) kept. */
function fieldAt(schema: z.ZodType, path: readonly string[]): z.ZodType | undefined {
  let node: z.ZodType | undefined = schema;
  for (const key of path) {
    const inner: z.ZodType | undefined = node === undefined ? undefined : unwrap(node);
    node = inner instanceof z.ZodObject ? (inner.shape[key] as z.ZodType | undefined) : undefined;
  }
  return node;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
}

/** What the field becomes when nothing sets it. */
function defaultOf(field: z.ZodType): string {
  const r = field.safeParse(undefined);
  if (!r.success) return 'required';
  if (r.data === undefined || r.data === null) return 'unset';
  return Array.isArray(r.data) ? r.data.join(',') : String(r.data);
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] ?? '';
    const child = node[key];
    if (child !== null && typeof child === 'object' && !Array.isArray(child)) {
      node = child as Record<string, unknown>;
    } else {
      const created: Record<string, unknown> = {};
      node[key] = created;
      node = created;
    }
  }
  node[path[path.length - 1] ?? ''] = value;
}
