// Goal: Storage.defragment gives back the space of deleted records even when they never left the first memtable (LevelDB flushes that table straight to level 2, below the levels its manual compaction reaches), since NOSPACE recovery depends on it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Storage, u64Key, type BatchOp } from '../../server/storage/layout.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('Storage.defragment', () => {
  it('drops deleted records written since the database was created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gavel-defrag-'));
    dirs.push(dir);
    const storage = await Storage.open(dir);
    try {
      // 40 random (incompressible) 10 kB values, then all but one deleted: ~400 kB dead, 10 kB live.
      const puts: BatchOp[] = Array.from({ length: 40 }, (_, i) => ({ type: 'put', space: 'kv', key: u64Key(i), value: randomBytes(10_000) }));
      for (const op of puts) await storage.write([op], false);
      await storage.write(Array.from({ length: 39 }, (_, i): BatchOp => ({ type: 'del', space: 'kv', key: u64Key(i) })), true);
      expect(await storage.diskSizeBytes()).toBeGreaterThan(400_000);
      await storage.defragment();
      expect(await storage.diskSizeBytes()).toBeLessThan(50_000);
      expect((await storage.get('kv', u64Key(39)))?.byteLength).toBe(10_000);
    } finally {
      await storage.close();
    }
  });
});
