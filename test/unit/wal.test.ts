/**
 * Goal: the write-ahead log gives back exactly what was saved (entries, the newest hard state and
 * snapshot marker), replaces a conflicting suffix as Raft does, survives segment rotation and the
 * deletion of covered segments, repairs a tail torn by a crash, and refuses to replay corruption.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Wal, WalCorruptError } from '../../server/storage/wal.js';
import type { Entry, HardState } from '../../server/raft/index.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function directory(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gavel-wal-'));
  dirs.push(dir);
  return join(dir, 'wal');
}

const confState = { voters: [1n, 2n, 3n], learners: [] };
const start = { metadata: { index: 1, term: 1, confState } };
const entry = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, type: 'normal', data: new TextEncoder().encode(text) });
const entries = (from: number, to: number, term: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const hard = (term: number, commit: number): HardState => ({ term, vote: 2n, commit });

async function reopen(dir: string, segmentBytes?: number) {
  return Wal.open(dir, segmentBytes === undefined ? {} : { segmentBytes });
}

describe('write-ahead log', () => {
  it('gives back saved entries, the newest hard state and snapshot, across reopen', async () => {
    const dir = directory();
    const wal = await Wal.create(dir, start, hard(1, 1));
    await wal.save(entries(2, 10, 1), hard(1, 5), true);
    await wal.save([], hard(2, 9), false);
    await wal.save(entries(11, 12, 2), undefined, true);
    await wal.close();
    const { wal: again, state } = await reopen(dir);
    expect(state.snapshot).toEqual(start);
    expect(state.hardState).toEqual(hard(2, 9));
    expect(state.entries).toEqual([...entries(2, 10, 1), ...entries(11, 12, 2)]);
    await again.close();
  });

  it('replaces a conflicting suffix, and a snapshot from the leader replaces the whole log', async () => {
    const dir = directory();
    const wal = await Wal.create(dir, start, hard(1, 1));
    await wal.save(entries(2, 8, 1), hard(1, 4), true);
    await wal.save(entries(6, 7, 3), hard(3, 4), true); // a new leader overwrote 6..8
    await wal.close();
    let { wal: again, state } = await reopen(dir);
    expect(state.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['2@1', '3@1', '4@1', '5@1', '6@3', '7@3']);
    // A local snapshot keeps the entries after it; an installed one drops every entry.
    await again.saveSnapshot({ metadata: { index: 4, term: 1, confState } });
    await again.close();
    ({ wal: again, state } = await reopen(dir));
    expect(state.snapshot?.metadata.index).toBe(4);
    expect(state.entries.map((e) => e.index)).toEqual([5, 6, 7]);
    await again.saveSnapshot({ metadata: { index: 20, term: 3, confState }, file: '/snap/20.gvsnap' }, hard(3, 20));
    await again.close();
    ({ wal: again, state } = await reopen(dir));
    expect(state.snapshot).toEqual({ metadata: { index: 20, term: 3, confState }, file: '/snap/20.gvsnap' });
    expect(state.entries).toEqual([]);
    expect(state.hardState).toEqual(hard(3, 20));
    await again.close();
  });

  it('rotates segments, carries state into each, and deletes the ones a snapshot covers', async () => {
    const dir = directory();
    const segmentBytes = 4096;
    const wal = await Wal.create(dir, start, hard(1, 1), { segmentBytes });
    for (let index = 2; index <= 400; index += 10) await wal.save(entries(index, index + 9, 1), hard(1, index + 9), true);
    expect(wal.segmentCount).toBeGreaterThan(3);
    const before = readdirSync(dir).filter((name) => name.endsWith('.wal')).length;
    await wal.saveSnapshot({ metadata: { index: 300, term: 1, confState } });
    await wal.releaseTo(300);
    const after = readdirSync(dir).filter((name) => name.endsWith('.wal')).length;
    expect(after).toBeLessThan(before);
    await wal.close();
    const { wal: again, state } = await reopen(dir, segmentBytes);
    expect(state.snapshot?.metadata.index).toBe(300);
    expect(state.hardState).toEqual(hard(1, 401));
    expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: 101 }, (_, i) => 301 + i));
    await again.close();
  });

  it('replays records that straddle the edges of the chunks it reads, small and larger than a chunk', async () => {
    const dir = directory();
    const wal = await Wal.create(dir, start, hard(1, 1), { segmentBytes: 64 * 1024 });
    const saved = Array.from({ length: 120 }, (_, i) => entry(2 + i, 1, `v${i}-`.padEnd(1 + ((i * 37) % 300), 'x')));
    for (let i = 0; i < saved.length; i += 7) await wal.save(saved.slice(i, i + 7), hard(1, saved[Math.min(i + 6, saved.length - 1)]!.index), true);
    await wal.close();
    for (const replayChunkBytes of [16, 61, 1000]) {
      const { wal: again, state } = await Wal.open(dir, { segmentBytes: 64 * 1024, replayChunkBytes });
      expect(state.entries.map((e) => new TextDecoder().decode(e.data))).toEqual(saved.map((e) => new TextDecoder().decode(e.data)));
      expect(state.hardState).toEqual(hard(1, 121));
      await again.close();
    }
  });

  it('repairs a tail torn by a crash and appends after it', async () => {
    const dir = directory();
    const wal = await Wal.create(dir, start, hard(1, 1), { segmentBytes: 8192 });
    await wal.save(entries(2, 5, 1), hard(1, 5), true);
    await wal.save([entry(6, 1, 'x'.repeat(300))], hard(1, 6), true);
    await wal.close();
    // Cut the last append short: its last bytes never reached the disk.
    const segment = join(dir, readdirSync(dir).find((name) => name.endsWith('.wal'))!);
    const bytes = readFileSync(segment);
    const end = lastNonZero(bytes) + 1;
    bytes.fill(0, end - 40, end);
    writeFileSync(segment, bytes);
    let { wal: again, state } = await reopen(dir, 8192);
    expect(state.entries.map((e) => e.index)).toEqual([2, 3, 4, 5]);
    expect(state.hardState).toEqual(hard(1, 5));
    await again.save([entry(6, 2)], hard(2, 6), true);
    await again.close();
    ({ wal: again, state } = await reopen(dir, 8192));
    expect(state.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['2@1', '3@1', '4@1', '5@1', '6@2']);
    await again.close();
  });

  it('refuses a log with a corrupted record that intact records follow', async () => {
    const dir = directory();
    const wal = await Wal.create(dir, start, hard(1, 1), { segmentBytes: 8192 });
    await wal.save(entries(2, 20, 1), hard(1, 20), true);
    await wal.close();
    const segment = join(dir, readdirSync(dir).find((name) => name.endsWith('.wal'))!);
    const bytes = readFileSync(segment);
    const text = bytes.indexOf(Buffer.from('e7'));
    bytes[text + 1] = 0x39; // e7 -> e9: a flipped byte inside an acknowledged entry
    writeFileSync(segment, bytes);
    await expect(reopen(dir, 8192)).rejects.toBeInstanceOf(WalCorruptError);
  });
});

function lastNonZero(bytes: Buffer): number {
  for (let index = bytes.byteLength - 1; index >= 0; index--) if (bytes[index] !== 0) return index;
  return -1;
}
