// Goal: every interaction script in testdata/ produces exactly its recorded output.
// Set UPDATE_INTERACTION=1 to rewrite the files with the actual output (then review the diff).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runScript } from './runner.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('raft interaction scripts', () => {
  it('has scripts', () => {
    expect(files.length).toBeGreaterThan(0);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const original = readFileSync(path, 'utf8');
      const actual = runScript(original);
      if (process.env['UPDATE_INTERACTION'] === '1' && actual !== original) writeFileSync(path, actual);
      else expect(actual).toBe(original);
    });
  }
});
