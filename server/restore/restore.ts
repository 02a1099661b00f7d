/**
 * `gavel snapshot restore`: builds the data dir of a member of a NEW cluster from a backup file.
 *
 * Nothing is written unless the whole file checks out, and nothing half-written is ever left at
 * --data-dir:
 *   1. --data-dir must be absent or an empty directory (a member's data is never overwritten);
 *   2. the file is read end to end and checked (format, truncation, SHA-256 trailer) BEFORE
 *      anything is written;
 *   3. the data dir is built beside the target, under a temporary name: level with the backup's
 *      state (bounded batches, the last one synced) plus the new membership and identity
 *      (plan.ts), then the write-ahead log starting after the backup's applied index. The file is
 *      decoded and checked again as it is copied;
 *   4. only then is the directory renamed to --data-dir (and the parent directory synced). Any
 *      failure removes the temporary directory.
 *
 * The member then starts on that data dir as on a restart: its identity is on disk, so
 * --initial-cluster and --initial-cluster-state are not consulted (as etcd after a restore).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { GavelError } from '../errors.js';
import { Storage, type BatchOp } from '../storage/layout.js';
import { createRaftLog } from '../storage/raft-wal.js';
import type { SnapshotRecord } from '../apply/snapshot-format.js';
import { planRestore, restoredRecord, type RestorePlan } from './plan.js';
import { readSnapshotFile, type SnapshotSummary } from './snapshot-file.js';
import type { RestoreOptions } from './options.js';

/** A level batch while copying: bounded in operations and bytes. */
const COPY_BATCH_OPS = 10_000;
const COPY_BATCH_BYTES = 8 * 1024 * 1024;

export interface RestoreResult {
  readonly summary: SnapshotSummary;
  readonly plan: RestorePlan;
  readonly dataDir: string;
}

export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  const dataDir = resolve(options.config.dataDir);
  const target = await targetState(dataDir);
  const checkDigest = !options.skipHashCheck;
  const summary = await readSnapshotFile(options.file, { checkDigest });
  const plan = planRestore(options.config, summary.appliedIndex);
  await mkdir(dirname(dataDir), { recursive: true });
  const temporary = join(dirname(dataDir), `.${basename(dataDir)}.restoring-${randomBytes(4).toString('hex')}`);
  try {
    await writeState(temporary, options.file, checkDigest, plan);
    const wal = await createRaftLog(temporary, { metadata: plan.metadata }, plan.hardState);
    await wal.close();
    if (target === 'empty') await rmdir(dataDir);
    await rename(temporary, dataDir);
    await syncDirectory(dirname(dataDir));
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
  return { summary, plan, dataDir };
}

/** 'absent' or 'empty'; anything else is refused before the file is even read. */
async function targetState(dataDir: string): Promise<'absent' | 'empty'> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'absent';
    if (code === 'ENOTDIR') throw new GavelError('InvalidArgument', `--data-dir ${dataDir} is a file, not a directory`);
    throw error;
  }
  if (names.length > 0) throw new GavelError('InvalidArgument', `--data-dir ${dataDir} exists and is not empty: restore builds a new data dir and never overwrites one`);
  return 'empty';
}

/** Level: the backup's state records (checked again as they stream), then the new member's records, synced. */
async function writeState(directory: string, file: string, checkDigest: boolean, plan: RestorePlan): Promise<void> {
  const storage = await Storage.open(directory);
  try {
    let ops: BatchOp[] = [];
    let bytes = 0;
    await readSnapshotFile(file, { checkDigest }, async (records: readonly SnapshotRecord[]) => {
      for (const record of records) {
        if (!restoredRecord(record)) continue;
        ops.push({ type: 'put', space: record.space, key: record.key, value: record.value });
        bytes += record.key.byteLength + record.value.byteLength;
        if (ops.length < COPY_BATCH_OPS && bytes < COPY_BATCH_BYTES) continue;
        await storage.write(ops, false);
        ops = [];
        bytes = 0;
      }
    });
    // Synced: every earlier batch is durable once this one is (level's log is ordered).
    await storage.write([...ops, ...plan.memberOps], true);
  } finally {
    await storage.close();
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
