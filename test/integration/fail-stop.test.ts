/**
 * Goal: a member that cannot apply a committed entry stops (exit status 1) and says which entry
 * and why in its log, instead of answering requests from a state the cluster does not have;
 * and a restart meets the same entry and stops again rather than skipping it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startMember, stopAllMembers, waitUntil } from '../helpers/gavel.js';
import { Wal } from '../../server/storage/wal.js';
import { walDirectory } from '../../server/storage/raft-wal.js';

afterAll(stopAllMembers);

/** Appends a committed entry whose bytes are no request at all (a corrupted or foreign entry). */
async function appendUnappliableEntry(dataDir: string): Promise<number> {
  const { wal, state } = await Wal.open(walDirectory(dataDir));
  try {
    if (state.hardState === undefined) throw new Error('no member in this data dir');
    const index = (state.entries.at(-1)?.index ?? state.snapshot?.metadata.index ?? 0) + 1;
    const entry = { index, term: state.hardState.term, type: 'normal' as const, data: Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]) };
    await wal.save([entry], { ...state.hardState, commit: index }, true);
    return index;
  } finally {
    await wal.close();
  }
}

describe('fail-stop on an entry that cannot be applied', () => {
  it('exits with status 1 naming the entry, at every restart', async () => {
    const member = await startMember({ target: 'gavel' });
    await member.stop();
    const index = await appendUnappliableEntry(member.dataDir);

    for (let attempt = 1; attempt <= 2; attempt++) {
      // The member may get as far as announcing itself before it applies the entry; either way it must stop.
      await member.restart().catch(() => undefined);
      await waitUntil('the member to stop', () => (member.running ? undefined : true), 20_000);
      const lines = member.logs().split('\n').filter((line) => line.includes('cannot apply a committed entry'));
      expect(lines.length).toBeGreaterThanOrEqual(attempt);
      const logged = JSON.parse(lines.at(-1)!) as { index: number; error: string };
      expect(logged.index).toBe(index);
      expect(logged.error.length).toBeGreaterThan(0);
      expect(member.logs()).toMatch(/exited code=1/);
    }
  });
});
