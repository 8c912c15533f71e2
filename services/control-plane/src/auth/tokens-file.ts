import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ErrorCode, TandemError, parseOrThrow, systemClock, type Clock, type Logger } from '@tandem/common';
import type { Authenticator } from './authenticator.js';
import { ROLES, type Principal, type Role } from './principal.js';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const TokenEntry = z
  .strictObject({
    /** Who the token belongs to (logged; never the token). */
    subject: z.string().min(1).max(253),
    /** Hex SHA-256 of the token: the file then holds no usable secret. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/i, 'must be 64 hex digits (sha256 of the token)').optional(),
    /** The token itself (hashed on load); prefer sha256. */
    token: z.string().min(16, 'must be at least 16 characters').max(4096).optional(),
    role: z.enum(ROLES as [Role, ...Role[]]),
    /** Namespaces the token may act in; ["*"] is every namespace. */
    namespaces: z
      .array(z.string().refine((s) => s === '*' || (s.length <= 63 && NAMESPACE.test(s)), 'must be "*" or a DNS-1123 label'))
      .min(1),
  })
  .refine((e) => (e.sha256 === undefined) !== (e.token === undefined), { message: 'set exactly one of token and sha256', path: ['sha256'] });

/** The tokens file: `{ tokens: [...] }` in YAML or JSON (docs/operations.md, Security). */
export const TokensFile = z.strictObject({ tokens: z.array(TokenEntry).max(10_000) });

interface Entry {
  digest: Buffer;
  principal: Principal;
}

/** SHA-256 of a token, as stored and compared. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Parses a tokens file's text; INVALID_ARGUMENT names the bad entry and field. */
export function parseTokensFile(text: string, source: string): Principal[] & { digests: Buffer[] } {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    // Only the position: the parser's message quotes the offending line, which may hold a token.
    const pos = (err as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    throw new TandemError(ErrorCode.InvalidArgument, `${source} is not valid YAML or JSON${pos ? ` (line ${pos.line}, column ${pos.col})` : ''}`);
  }
  const file = parseOrThrow(TokensFile, raw, source);
  const principals = file.tokens.map((e) => ({
    subject: e.subject,
    role: e.role,
    namespaces: e.namespaces.includes('*') ? ('*' as const) : new Set(e.namespaces),
  }));
  const digests = file.tokens.map((e) => (e.sha256 !== undefined ? Buffer.from(e.sha256, 'hex') : tokenDigest(e.token as string)));
  return Object.assign(principals, { digests });
}

/** Options of {@link TokensFileAuthenticator}. */
export interface TokensFileOptions {
  path: string;
  log: Logger;
  clock?: Clock;
  /** How often the file's mtime is checked for a change. @default 2000 */
  reloadCheckMs?: number;
}

/**
 * Bearer tokens from a file: what a mounted Kubernetes Secret provides. Only
 * SHA-256 digests are kept in memory; a presented token is hashed and
 * compared with every entry in constant time. The file is re-read when its
 * mtime changes (a Secret update swaps the mounted file); a file that no
 * longer parses keeps the previous tokens and logs why.
 */
export class TokensFileAuthenticator implements Authenticator {
  readonly name = 'tokens-file';
  private readonly options: TokensFileOptions;
  private readonly clock: Clock;
  private entries: Entry[] = [];
  private mtimeMs = -1;
  private checkedAt = -Infinity;
  private reloading: Promise<void> | undefined;

  private constructor(options: TokensFileOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
  }

  /** Loads the file; a missing or bad file is an error at start-up. */
  static async create(options: TokensFileOptions): Promise<TokensFileAuthenticator> {
    const a = new TokensFileAuthenticator(options);
    await a.load();
    return a;
  }

  /** Number of tokens loaded. */
  get size(): number {
    return this.entries.length;
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    await this.maybeReload();
    const digest = tokenDigest(token);
    let found: Principal | undefined;
    // Every entry is compared, so the time taken does not depend on which matched.
    for (const e of this.entries) if (timingSafeEqual(e.digest, digest) && !found) found = e.principal;
    return found;
  }

  private async load(): Promise<void> {
    const { path } = this.options;
    const st = await stat(path).catch((err: unknown) => {
      throw new TandemError(ErrorCode.InvalidArgument, `TANDEM_AUTH_TOKENS_FILE ${path} cannot be read: ${(err as Error).message}`);
    });
    const parsed = parseTokensFile(await readFile(path, 'utf8'), `tokens file ${path}`);
    this.entries = parsed.map((principal, i) => ({ principal, digest: parsed.digests[i] as Buffer }));
    this.mtimeMs = st.mtimeMs;
    this.options.log.info({ path, tokens: this.entries.length }, 'tokens file loaded');
  }

  private async maybeReload(): Promise<void> {
    const now = this.clock.now();
    if (now - this.checkedAt < (this.options.reloadCheckMs ?? 2000)) return;
    this.checkedAt = now;
    this.reloading ??= (async () => {
      try {
        const st = await stat(this.options.path);
        if (st.mtimeMs !== this.mtimeMs) await this.load();
      } catch (err) {
        this.options.log.error({ err: TandemError.from(err).message, path: this.options.path }, 'tokens file could not be reloaded; keeping the previous tokens');
      } finally {
        this.reloading = undefined;
      }
    })();
    await this.reloading;
  }
}
