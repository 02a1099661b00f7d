/**
 * Where a member's Raft log lives and how it gets there: the write-ahead log under
 * <data-dir>/wal (wal.ts). A data dir written before the log moved out of level (its 'log' and
 * 'raft' spaces hold it) is migrated once, on the first start: the entries, hard state and
 * snapshot metadata are copied into a new write-ahead log, synced, and only then removed from
 * level.
 */
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { EMPTY_CONF_STATE, EMPTY_HARD_STATE, type HardState } from '../raft/index.js';
import { loadRaftState, RAFT_STATE_KEYS } from './raft-log.js';
import type { Storage } from './layout.js';
import { Wal, type WalState, type WalSnapshot, type WalOptions } from './wal.js';

export function walDirectory(dataDir: string): string {
  return join(dataDir, 'wal');
}

/** The write-ahead log of a member that has one (migrated from level if need be); undefined for a new member. */
export async function openRaftLog(storage: Storage, dataDir: string, logger: Logger, options: WalOptions = {}): Promise<{ wal: Wal; state: WalState } | undefined> {
  const directory = walDirectory(dataDir);
  if (await Wal.exists(directory)) return Wal.open(directory, options);
  const legacy = await loadRaftState(storage);
  if (legacy.hardState === undefined) return undefined;
  const snapshot: WalSnapshot = { metadata: legacy.snapshot ?? { index: 0, term: 0, confState: EMPTY_CONF_STATE } };
  const wal = await Wal.create(directory, snapshot, legacy.hardState, options);
  await wal.save(legacy.entries, legacy.hardState, true);
  await wal.close();
  // Only once the new log is on disk does the old one go.
  await storage.space('log').clear();
  await storage.write(RAFT_STATE_KEYS.map((key) => ({ type: 'del', space: 'raft', key })), true);
  logger.info('moved the Raft log from level to the write-ahead log', { entries: legacy.entries.length, directory });
  return Wal.open(directory, options);
}

/** A new log: a bootstrapped cluster's snapshot at index 1, or nothing yet for a member joining. */
export function createRaftLog(dataDir: string, snapshot: WalSnapshot | undefined, hardState: HardState | undefined, options: WalOptions = {}): Promise<Wal> {
  return Wal.create(walDirectory(dataDir), snapshot ?? { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE } }, hardState ?? EMPTY_HARD_STATE, options);
}
