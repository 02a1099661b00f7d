/**
 * The persistence shell of the MVCC store: a pure transform from StoreChanges to level
 * operations, and a loader that rebuilds the store. The node's apply loop writes these
 * operations in the SAME level batch as the applied index, so a replay after a crash is
 * idempotent (a put of the same revision key rewrites the same bytes).
 *
 * Both spaces (sublevels, named as in storage/layout.ts) are opened with SUBLEVEL_OPTIONS
 * (keys and values as Uint8Array):
 *   'kv':     revision key (codec.ts) -> encoded KeyValue; level's byte order is revision order
 *   'kvmeta': 'compactedRevision' / 'currentRevision' / 'finishedCompactRevision' -> u64 big-endian
 *
 * Only the key index is rebuilt in memory at load; the store reads versions back from the 'kv'
 * space on demand (VersionReader, level's synchronous get).
 */
import { assert, assertNever } from '../errors.js';
import { crc32 } from './crc32.js';
import { decodeRecordHeader, decodeRevisionKey, decodeUint64, encodeKeyValue, encodeRevisionKey, encodeUint64 } from './codec.js';
import { StoreBuilder, type MvccStore, type StoreOptions, type VersionReader } from './store.js';
import { GavelError } from '../errors.js';
import type { StoreChange } from './store-change.js';

export type { StoreChange } from './store-change.js';

/** The level spaces this module writes; structurally a subset of storage/layout.ts's Space. */
export type MvccSpace = 'kv' | 'kvmeta';
export const KV_SUBLEVEL = 'kv';
export const META_SUBLEVEL = 'kvmeta';
export const SUBLEVEL_OPTIONS = { keyEncoding: 'view', valueEncoding: 'view' } as const;

export const COMPACTED_REVISION_KEY: Uint8Array = new TextEncoder().encode('compactedRevision');
export const CURRENT_REVISION_KEY: Uint8Array = new TextEncoder().encode('currentRevision');
export const FINISHED_COMPACT_REVISION_KEY: Uint8Array = new TextEncoder().encode('finishedCompactRevision');

/** One operation on the 'kv' or 'kvmeta' space (assignable to storage/layout.ts's BatchOp). */
export type BackendOp =
  | { readonly type: 'put'; readonly space: MvccSpace; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly space: MvccSpace; readonly key: Uint8Array };

export function changesToBatch(changes: readonly StoreChange[]): BackendOp[] {
  const ops: BackendOp[] = [];
  for (const change of changes) {
    switch (change.type) {
      case 'put':
        assert(change.kv.modRevision === change.revision.main, 'a stored version carries its own revision');
        ops.push({ type: 'put', space: 'kv', key: encodeRevisionKey(change.revision, change.tombstone), value: encodeKeyValue(change.kv) });
        break;
      case 'meta':
        if (change.compactedRevision !== undefined) {
          ops.push({ type: 'put', space: 'kvmeta', key: COMPACTED_REVISION_KEY, value: encodeUint64(change.compactedRevision) });
        }
        if (change.currentRevision !== undefined) {
          ops.push({ type: 'put', space: 'kvmeta', key: CURRENT_REVISION_KEY, value: encodeUint64(change.currentRevision) });
        }
        if (change.finishedCompactRevision !== undefined) {
          ops.push({ type: 'put', space: 'kvmeta', key: FINISHED_COMPACT_REVISION_KEY, value: encodeUint64(change.finishedCompactRevision) });
        }
        break;
      default:
        assertNever(change);
    }
  }
  return ops;
}

/**
 * Map BackendOps onto level batch operations (`db.batch(toLevelOps(ops, { kv, meta }))`), which
 * carry the sublevel object so one batch spans both sublevels and the applied index.
 */
export function toLevelOps<S>(ops: readonly BackendOp[], sublevels: Readonly<Record<MvccSpace, S>>):
  Array<{ type: 'put'; sublevel: S; key: Uint8Array; value: Uint8Array } | { type: 'del'; sublevel: S; key: Uint8Array }> {
  return ops.map((op) => {
    const sublevel = sublevels[op.space];
    return op.type === 'put' ? { type: 'put', sublevel, key: op.key, value: op.value } : { type: 'del', sublevel, key: op.key };
  });
}

/** What loadStore needs of the 'kv' sublevel: batched iteration in key order, and synchronous gets. */
export interface KvSource {
  iterator(options: { highWaterMarkBytes: number }): { nextv(size: number): Promise<Array<[Uint8Array, Uint8Array]>>; close(): Promise<void> };
  getSync(key: Uint8Array): Uint8Array | undefined;
}

/** What loadStore needs of the 'kvmeta' sublevel. */
export interface MetaSource {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
}

/** Entries read per iterator step while rebuilding the index. */
const LOAD_BATCH = 1000;
/** classic-level's nextv() stops at this many bytes (its default, 16 KiB, would cut batches to ~50 records). */
const LOAD_HIGH_WATER_BYTES = 1024 * 1024;

/** The store's window onto level: a version by its revision key, synchronously. */
export function levelReader(kv: Pick<KvSource, 'getSync'>): VersionReader {
  // A sublevel's getSync re-encodes and prefixes the key on every call; reading the parent with
  // the prefix put in front once is a third cheaper, and watchers catching up read a lot.
  const sub = kv as { prefix?: unknown; parent?: { getSync?: (key: Uint8Array) => Uint8Array | undefined } };
  const parent = sub.parent;
  if (typeof sub.prefix === 'string' && typeof parent?.getSync === 'function') {
    const prefix = Buffer.from(sub.prefix, 'utf8');
    return {
      read: (revisionKey) => {
        const key = Buffer.allocUnsafe(prefix.byteLength + revisionKey.byteLength);
        prefix.copy(key, 0);
        key.set(revisionKey, prefix.byteLength);
        return parent.getSync!(key);
      },
    };
  }
  return { read: (revisionKey) => kv.getSync(revisionKey) };
}

/**
 * Rebuild the key index from level, streaming: only what the index keeps is held, never the
 * versions' values. StoreBuilder checks every invariant on what it reads.
 */
export async function loadStore(kvSublevel: KvSource, metaSublevel: MetaSource, options: Omit<StoreOptions, 'reader'> = {}): Promise<MvccStore> {
  const meta = await loadMeta(metaSublevel);
  const builder = new StoreBuilder(meta, { ...options, reader: levelReader(kvSublevel) });
  const iterator = kvSublevel.iterator({ highWaterMarkBytes: LOAD_HIGH_WATER_BYTES });
  try {
    for (;;) {
      const entries = await iterator.nextv(LOAD_BATCH);
      if (entries.length === 0) break;
      for (const [key, value] of entries) {
        const { revision, tombstone } = decodeRevisionKey(key);
        builder.add(revision, tombstone, decodeRecordHeader(value), key.byteLength + value.byteLength);
      }
    }
  } finally {
    await iterator.close();
  }
  return builder.finish();
}

async function loadMeta(metaSublevel: MetaSource): Promise<{ compactedRevision: number; currentRevision: number; finishedCompactRevision: number }> {
  const read = async (key: Uint8Array): Promise<number> => {
    const bytes = await metaSublevel.get(key);
    return bytes === undefined ? 0 : decodeUint64(bytes);
  };
  return {
    compactedRevision: await read(COMPACTED_REVISION_KEY),
    currentRevision: await read(CURRENT_REVISION_KEY),
    finishedCompactRevision: await read(FINISHED_COMPACT_REVISION_KEY),
  };
}

/** What hashLevel scans: the 'kv' space, read at one level snapshot, up to a revision key. */
export interface KvScan {
  iterator(options: { lt: Uint8Array; highWaterMarkBytes: number; snapshot: unknown }): { nextv(size: number): Promise<Array<[Uint8Array, Uint8Array]>>; close(): Promise<void> };
}

/**
 * MvccStore.hash computed from level: one sequential scan of the stored versions in revision
 * order, through a level snapshot, counting what the store's hashFilter counts. The caller takes
 * the snapshot once every version up to the revision is durable. A compaction during the scan
 * changes what counts: the hash is refused (Compacted) and the caller may start over.
 */
export async function hashLevel(kv: KvScan, snapshot: unknown, store: () => MvccStore, revision: number): Promise<number> {
  const hashed = store();
  const filter = hashed.hashFilter(revision);
  const iterator = kv.iterator({ lt: encodeRevisionKey({ main: filter.hashRevision + 1, sub: 0 }, false), highWaterMarkBytes: LOAD_HIGH_WATER_BYTES, snapshot });
  let crc = 0;
  try {
    for (;;) {
      const entries = await iterator.nextv(LOAD_BATCH);
      // A compaction, or a snapshot that replaced the store, changes what counts.
      if (store() !== hashed || hashed.compactionEpoch !== filter.epoch) throw new GavelError('Compacted', 'the store changed while hashing');
      if (entries.length === 0) return crc;
      for (const [key, value] of entries) {
        const { revision: version, tombstone } = decodeRevisionKey(key);
        if (!filter.counts(version, tombstone, decodeRecordHeader(value).key)) continue;
        crc = crc32(key, crc);
        crc = crc32(value, crc);
      }
    }
  } finally {
    await iterator.close();
  }
}
