import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TandemError, silentLogger, type Clock } from '@tandem/common';
import { bearerToken } from './authenticator.js';
import { allows } from './principal.js';
import { TokensFileAuthenticator, parseTokensFile, tokenDigest } from './tokens-file.js';

/** The tokens file: format, errors that name the entry and field, reload on change. */

const T1 = 'first-token-0123456789abcdef';
const T2 = 'second-token-0123456789abcdef';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-tokens-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function violations(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    return TandemError.from(err).fieldViolations;
  }
  throw new Error('expected an error');
}

describe('parseTokensFile', () => {
  it('reads YAML and JSON, by token or sha256, with * for every namespace', () => {
    const yaml = parseTokensFile(`tokens:\n  - { subject: a, token: ${T1}, role: viewer, namespaces: [team-a, team-b] }\n`, 'f');
    expect(yaml[0]).toMatchObject({ subject: 'a', role: 'viewer' });
    expect([...(yaml[0]?.namespaces as Set<string>)]).toEqual(['team-a', 'team-b']);
    expect(yaml.digests[0]?.equals(tokenDigest(T1))).toBe(true);
    const json = parseTokensFile(JSON.stringify({ tokens: [{ subject: 'b', sha256: tokenDigest(T2).toString('hex'), role: 'admin', namespaces: ['*'] }] }), 'f');
    expect(json[0]?.namespaces).toBe('*');
  });

  it('names the entry and field of every mistake', () => {
    expect(violations(() => parseTokensFile('tokens:\n  - { subject: a, token: short, role: viewer, namespaces: [x] }\n', 'f'))[0]?.path).toBe('tokens[0].token');
    expect(violations(() => parseTokensFile(`tokens:\n  - { subject: a, token: ${T1}, role: root, namespaces: [x] }\n`, 'f'))[0]?.path).toBe('tokens[0].role');
    expect(violations(() => parseTokensFile(`tokens:\n  - { subject: a, token: ${T1}, role: viewer, namespaces: [Team_A] }\n`, 'f'))[0]?.path).toBe('tokens[0].namespaces[0]');
    expect(violations(() => parseTokensFile('tokens:\n  - { subject: a, role: viewer, namespaces: [x] }\n', 'f'))[0]?.path).toBe('tokens[0].sha256');
    expect(violations(() => parseTokensFile(`tokens:\n  - { subject: a, token: ${T1}, role: viewer, namespaces: [x], extra: 1 }\n`, 'f')).length).toBeGreaterThan(0);
  });

  it('does not quote the file when it is not YAML (a line may hold a token)', () => {
    try {
      parseTokensFile(`tokens: [ { token: ${T1}`, 'tokens file f');
      throw new Error('expected an error');
    } catch (err) {
      expect((err as Error).message).toMatch(/^tokens file f is not valid YAML or JSON/);
      expect((err as Error).message).not.toContain(T1);
    }
  });
});

describe('TokensFileAuthenticator', () => {
  it('authenticates known tokens only, and picks up a changed file', async () => {
    const path = join(dir, 'tokens.yaml');
    await writeFile(path, `tokens:\n  - { subject: one, token: ${T1}, role: editor, namespaces: [a] }\n`);
    let now = 0;
    const clock = { now: () => now } as Clock;
    const auth = await TokensFileAuthenticator.create({ path, log: silentLogger(), clock, reloadCheckMs: 1000 });
    const p = await auth.authenticate(T1);
    expect(p?.subject).toBe('one');
    expect(allows(p!, 'a', 'write')).toBe(true);
    expect(allows(p!, 'b', 'read')).toBe(false);
    expect(await auth.authenticate(T2)).toBeUndefined();

    await writeFile(path, `tokens:\n  - { subject: two, token: ${T2}, role: viewer, namespaces: ['*'] }\n`);
    await utimes(path, new Date(), new Date(Date.now() + 5000)); // a distinct mtime even on coarse filesystems
    now = 5000;
    expect((await auth.authenticate(T2))?.subject).toBe('two');
    expect(await auth.authenticate(T1)).toBeUndefined();

    // A broken file keeps the previous tokens.
    await writeFile(path, 'tokens: [ {');
    await utimes(path, new Date(), new Date(Date.now() + 10_000));
    now = 10_000;
    expect((await auth.authenticate(T2))?.subject).toBe('two');
  });

  it('refuses to start on a missing or bad file, naming it', async () => {
    await expect(TokensFileAuthenticator.create({ path: join(dir, 'nope.yaml'), log: silentLogger() })).rejects.toThrow(/TANDEM_AUTH_TOKENS_FILE .*nope\.yaml/);
  });
});

describe('bearerToken', () => {
  it('takes the token of a Bearer header, and says what is wrong otherwise', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc ')).toBe('abc');
    expect(() => bearerToken(undefined)).toThrow(/missing credentials/);
    expect(() => bearerToken('Basic abc')).toThrow(/expected "Bearer <token>"/);
    expect(() => bearerToken('Bearer a b')).toThrow(/expected "Bearer <token>"/);
  });
});
