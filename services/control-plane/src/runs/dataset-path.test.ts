import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TandemError } from '@tandem/common';
import { checkDatasetPath } from './prompt-source.js';

let root: string;
let allowed: string;
let outside: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-datasets-'));
  allowed = join(root, 'datasets');
  await mkdir(allowed);
  await writeFile(join(allowed, 'math.jsonl'), '{"prompt":"1+1?","answer":"2"}\n');
  outside = join(root, 'secret.json');
  await writeFile(outside, '{"prompt":"not for you"}\n');
  await symlink(outside, join(allowed, 'link.jsonl'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function refusal(path: string, policy: Parameters<typeof checkDatasetPath>[1]): string {
  try {
    checkDatasetPath(path, policy);
  } catch (err) {
    const e = TandemError.from(err);
    expect(e.fieldViolations.map((v) => v.path)).toEqual(['dataset.path']);
    return e.message;
  }
  throw new Error(`${path} was allowed`);
}

describe('jsonl dataset paths (TANDEM_DATASET_DIRS)', () => {
  it('allows files under the configured directories, and any file when none are configured and auth is off', () => {
    expect(() => checkDatasetPath(join(allowed, 'math.jsonl'), { dirs: [allowed], dirsRequired: true })).not.toThrow();
    expect(() => checkDatasetPath(outside, { dirsRequired: false })).not.toThrow();
  });

  it('refuses files outside them, through .. or a symlink, naming the variable', () => {
    const policy = { dirs: [allowed], dirsRequired: true };
    expect(refusal(outside, policy)).toMatch(/is outside the directories datasets may be read from \(TANDEM_DATASET_DIRS: /);
    expect(refusal(join(allowed, '..', 'secret.json'), policy)).toMatch(/outside/);
    expect(refusal(join(allowed, 'link.jsonl'), policy)).toMatch(/outside/);
    // A directory whose name merely starts like the allowed one is not inside it.
    expect(refusal(outside, { dirs: [join(root, 'secret')], dirsRequired: true })).toMatch(/outside/);
    expect(refusal(join(allowed, 'missing.jsonl'), policy)).toMatch(/cannot be read/);
  });

  it('refuses every file while authentication is on and no directory is configured', () => {
    expect(refusal(join(allowed, 'math.jsonl'), { dirsRequired: true })).toMatch(/set TANDEM_DATASET_DIRS/);
  });
});
