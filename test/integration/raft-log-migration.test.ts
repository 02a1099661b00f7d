/**
 * Goal: a data dir written before the Raft log moved from level to the write-ahead log (its
 * entries, hard state and snapshot metadata in level's 'log' and 'raft' spaces) starts on the
 * new gavel with every write kept, its log moved to <data-dir>/wal, and the old copy removed.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { startMember, stopAllMembers } from '../helpers/gavel.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';
import { Storage } from '../../server/storage/layout.js';
import { loadRaftState, raftOps } from '../../server/storage/raft-log.js';
import { walDirectory } from '../../server/storage/raft-wal.js';
import { Wal } from '../../server/storage/wal.js';

afterAll(stopAllMembers);

/** Rewrites the member's write-ahead log into the layout an older gavel left in level. */
async function toLegacyLayout(dataDir: string): Promise<number> {
  const { wal, state } = await Wal.open(walDirectory(dataDir));
  await wal.close();
  const storage = await Storage.open(dataDir);
  try {
    const ops = [...raftOps.entries(state.entries), raftOps.hardState(state.hardState!)];
    if (state.snapshot !== undefined) ops.push(raftOps.snapshot(state.snapshot.metadata));
    await storage.write(ops, true);
  } finally {
    await storage.close();
  }
  await rm(walDirectory(dataDir), { recursive: true });
  return state.entries.length;
}

describe('a data dir with the Raft log in level', () => {
  it('is migrated to the write-ahead log on start, keeping every write', async () => {
    const member = await startMember({ target: 'gavel' });
    let client = new EtcdGrpcClient(member.endpoint);
    for (let i = 0; i < 50; i++) await client.put(`migrate/${i}`, `v${i}`);
    client.close();
    await member.stop();
    expect(await toLegacyLayout(member.dataDir)).toBeGreaterThan(50);

    await member.restart();
    expect(member.logs()).toContain('moved the Raft log from level to the write-ahead log');
    client = new EtcdGrpcClient(member.endpoint);
    try {
      for (let i = 0; i < 50; i += 7) expect((await client.range(`migrate/${i}`)).kvs[0]?.value.toString()).toBe(`v${i}`);
      await client.put('migrate/after', 'yes');
    } finally {
      client.close();
    }
    await member.stop();
    expect(existsSync(walDirectory(member.dataDir))).toBe(true);
    const storage = await Storage.open(member.dataDir);
    try {
      expect((await loadRaftState(storage)).hardState).toBeUndefined();
    } finally {
      await storage.close();
    }
    // And a second start reads the write-ahead log alone.
    await member.restart();
    client = new EtcdGrpcClient(member.endpoint);
    try {
      expect((await client.range('migrate/after')).kvs[0]?.value.toString()).toBe('yes');
    } finally {
      client.close();
    }
  });
});
