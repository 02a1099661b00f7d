/**
 * State-machine snapshots, for members too far behind to catch up from the log (and backups).
 *
 * A snapshot is the records of the state spaces (kv, kvmeta, lease, coord, auth, alarm) plus the
 * membership registry and the applied index from 'meta', read through ONE explicit level
 * snapshot taken while level held exactly the applied state, so it is consistent whatever is
 * written meanwhile. It is produced as a stream of chunks (snapshot-format.ts) and never held
 * whole in memory: the sender reads level as it sends, the receiver writes a file.
 *
 * Installing one is crash-safe: the node first records the snapshot in the write-ahead log, with
 * the file holding its state (synced); the state spaces are then cleared and rewritten from the
 * file in bounded batches, the applied index last. A restart that finds the log's snapshot newer
 * than level's applied index installs the same file again before loading anything
 * (resumeSnapshotInstall).
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AbstractSnapshot } from 'abstract-level';
import { assert } from '../errors.js';
import { decodeNumber, metaKey, SCAN_OPTIONS, type BatchOp, type Space, type Storage } from '../storage/layout.js';
import { Membership } from '../cluster/membership.js';
import { encodedRecordBytes, encodedSnapshotBytes, SnapshotDecoder, SnapshotEncoder, type SnapshotRecord } from './snapshot-format.js';

/** The spaces a snapshot replaces whole; 'log' and 'raft' belong to Raft, 'meta' holds identity too. */
export const STATE_SPACES: readonly Space[] = ['kv', 'kvmeta', 'lease', 'coord', 'auth', 'alarm'];
/** The keys of 'meta' that are state (the rest is this member's identity and Raft's). */
export const APPLIED_INDEX_KEY = metaKey('applied-index');
export const STATE_META_KEYS: readonly Uint8Array[] = [Membership.keys().members, Membership.keys().removed, APPLIED_INDEX_KEY];

/** Records read from level per iterator step while streaming. */
const READ_BATCH = 1000;
/** A level batch while installing: bounded in operations and bytes. */
const INSTALL_BATCH_OPS = 10_000;
const INSTALL_BATCH_BYTES = 8 * 1024 * 1024;
/** Chunks handed to the transport. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/**
 * The state as of `snapshot`, as a stream of chunks of about chunkBytes (aligned: the padded
 * version 2 of backups, snapshot-format.ts). The caller owns the level snapshot (and closes it
 * after the stream ends).
 */
export async function* streamSnapshot(storage: Storage, snapshot: AbstractSnapshot, chunkBytes = SNAPSHOT_CHUNK_BYTES, aligned = false): AsyncGenerator<Uint8Array> {
  const encoder = new SnapshotEncoder({ aligned });
  for await (const batch of snapshotRecords(storage, snapshot)) {
    for (const record of batch) encoder.record(record.space, record.key, record.value);
    if (encoder.buffered >= chunkBytes) yield encoder.take();
  }
  yield encoder.finish();
}

/**
 * The exact length of streamSnapshot's output for the same level snapshot, without the digest
 * trailer (one more pass over it: Maintenance.Snapshot announces the remaining bytes as etcd does).
 */
export async function measureSnapshot(storage: Storage, snapshot: AbstractSnapshot, aligned: boolean): Promise<number> {
  let recordBytes = 0;
  for await (const batch of snapshotRecords(storage, snapshot)) {
    for (const record of batch) recordBytes += encodedRecordBytes(record.key, record.value);
  }
  return encodedSnapshotBytes(recordBytes, aligned);
}

/** The applied index a level snapshot records; undefined while a snapshot install is half done. */
export async function appliedIndexOf(storage: Storage, snapshot: AbstractSnapshot): Promise<number | undefined> {
  return decodeNumber(await storage.space('meta').get(APPLIED_INDEX_KEY, { snapshot }));
}

/** The records a snapshot holds, in stream order, read from level a step (READ_BATCH) at a time. */
async function* snapshotRecords(storage: Storage, snapshot: AbstractSnapshot): AsyncGenerator<SnapshotRecord[]> {
  for (const space of STATE_SPACES) {
    const iterator = storage.space(space).iterator({ snapshot, ...SCAN_OPTIONS });
    try {
      for (;;) {
        const entries = await iterator.nextv(READ_BATCH);
        if (entries.length === 0) break;
        yield entries.map(([key, value]) => ({ space, key, value }));
      }
    } finally {
      await iterator.close();
    }
  }
  const meta: SnapshotRecord[] = [];
  for (const key of STATE_META_KEYS) {
    const value = await storage.space('meta').get(key, { snapshot });
    if (value !== undefined) meta.push({ space: 'meta', key, value });
  }
  yield meta;
}

/**
 * Writes the state as level holds it now to a file (synced, then renamed into place): a backup,
 * or a copy for tests. The caller makes sure no state write is in flight.
 */
export async function saveSnapshot(storage: Storage, path: string): Promise<void> {
  const snapshot = storage.db.snapshot();
  const temporary = `${path}.part`;
  const handle = await open(temporary, 'w');
  try {
    for await (const chunk of streamSnapshot(storage, snapshot)) {
      for (let offset = 0; offset < chunk.length; ) offset += (await handle.write(chunk, offset, chunk.length - offset)).bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
    await snapshot.close();
  }
  await rename(temporary, path);
}

/** The applied index a snapshot file records (read while verifying it end to end). */
export async function verifySnapshotFile(path: string): Promise<{ appliedIndex: number; records: bigint }> {
  let appliedIndex: number | undefined;
  const decoder = new SnapshotDecoder();
  for await (const chunk of createReadStream(path, { highWaterMark: SNAPSHOT_CHUNK_BYTES })) {
    for (const record of decoder.push(chunk as Buffer)) {
      if (record.space === 'meta' && isAppliedIndexKey(record.key)) appliedIndex = decodeNumber(record.value);
    }
  }
  decoder.end();
  assert(appliedIndex !== undefined, `snapshot ${path} records no applied index`);
  return { appliedIndex, records: decoder.recordCount };
}

/**
 * Replaces the state with the verified snapshot file's, in bounded batches. The applied index is
 * written last, in the final (synced) batch: until then level's applied index is the old one, or
 * absent, and a restart knows the install is unfinished.
 */
export async function installSnapshotFile(storage: Storage, path: string): Promise<void> {
  await storage.write([{ type: 'del', space: 'meta', key: APPLIED_INDEX_KEY }], true);
  for (const space of STATE_SPACES) await storage.space(space).clear();
  await storage.write(STATE_META_KEYS.map((key) => ({ type: 'del', space: 'meta', key })), false);
  const decoder = new SnapshotDecoder();
  let ops: BatchOp[] = [];
  let bytes = 0;
  let applied: BatchOp | undefined;
  for await (const chunk of createReadStream(path, { highWaterMark: SNAPSHOT_CHUNK_BYTES })) {
    for (const record of decoder.push(chunk as Buffer)) {
      const op: BatchOp = { type: 'put', space: record.space, key: record.key, value: record.value };
      if (record.space === 'meta' && isAppliedIndexKey(record.key)) {
        applied = op;
        continue;
      }
      ops.push(op);
      bytes += record.key.byteLength + record.value.byteLength;
      if (ops.length >= INSTALL_BATCH_OPS || bytes >= INSTALL_BATCH_BYTES) {
        await storage.write(ops, false);
        ops = [];
        bytes = 0;
      }
    }
  }
  decoder.end();
  assert(applied !== undefined, `snapshot ${path} records no applied index`);
  ops.push(applied);
  // Synced: every earlier batch of the install is durable once this one is (level's log is ordered).
  await storage.write(ops, true);
}

/**
 * A restart after a crash in the middle of an install (the write-ahead log's snapshot, from the
 * leader, is newer than level's applied index): install the same file again. Returns its path.
 */
export async function resumeSnapshotInstall(storage: Storage, snapshot: { readonly metadata: { readonly index: number }; readonly file?: string } | undefined): Promise<string | undefined> {
  if (snapshot?.file === undefined) return undefined;
  const applied = decodeNumber(await storage.get('meta', APPLIED_INDEX_KEY)) ?? 0;
  if (applied >= snapshot.metadata.index) return undefined;
  await installSnapshotFile(storage, snapshot.file);
  return snapshot.file;
}

/** Where received snapshot files live: <data-dir>/snap. */
export function snapshotDirectory(dataDir: string): string {
  return join(dataDir, 'snap');
}

/** Removes snapshot files other than keep (installed or abandoned ones). */
export async function pruneSnapshotFiles(directory: string, keep?: string): Promise<void> {
  await mkdir(directory, { recursive: true });
  for (const name of await readdir(directory)) {
    const path = join(directory, name);
    if (path !== keep) await rm(path, { force: true });
  }
}

function isAppliedIndexKey(key: Uint8Array): boolean {
  return Buffer.from(key).equals(Buffer.from(APPLIED_INDEX_KEY));
}
