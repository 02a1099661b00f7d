/**
 * The persistence shell of the MVCC store: a pure transform from StoreChanges to level
 * operations, and a loader that rebuilds the store. The node's apply loop writes these
 * operations in the SAME level batch as the applied index, so a replay after a crash is
 * idempotent (a put of the same revision key rewrites the same bytes).
 *
 * Both spaces (sublevels, named as in storage/layout.ts) are opened with SUBLEVEL_OPTIONS
 * (keys and values as Uint8Array):
 *   'kv':     revision key (codec.ts) -> encoded KeyValue; level's byte order is revision order
 *   'kvmeta': 'compactedRevision' / 'currentRevision' -> u64 big-endian
 */
import { assert, assertNever } from '../errors.js';
import { decodeKeyValue, decodeRevisionKey, decodeUint64, encodeKeyValue, encodeRevisionKey, encodeUint64 } from './codec.js';
import { MvccStore, type PersistedVersion } from './store.js';
import type { StoreChange } from './store-change.js';

export type { StoreChange } from './store-change.js';

/** The level spaces this module writes; structurally a subset of storage/layout.ts's Space. */
export type MvccSpace = 'kv' | 'kvmeta';
export const KV_SUBLEVEL = 'kv';
export const META_SUBLEVEL = 'kvmeta';
export const SUBLEVEL_OPTIONS = { keyEncoding: 'view', valueEncoding: 'view' } as const;

export const COMPACTED_REVISION_KEY: Uint8Array = new TextEncoder().encode('compactedRevision');
export const CURRENT_REVISION_KEY: Uint8Array = new TextEncoder().encode('currentRevision');

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
      case 'remove':
        ops.push({ type: 'del', space: 'kv', key: encodeRevisionKey(change.revision, change.tombstone) });
        break;
      case 'meta':
        if (change.compactedRevision !== undefined) {
          ops.push({ type: 'put', space: 'kvmeta', key: COMPACTED_REVISION_KEY, value: encodeUint64(change.compactedRevision) });
        }
        if (change.currentRevision !== undefined) {
          ops.push({ type: 'put', space: 'kvmeta', key: CURRENT_REVISION_KEY, value: encodeUint64(change.currentRevision) });
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

/** What loadStore needs of the 'kv' sublevel: iteration in key order. */
export interface KvSource {
  iterator(): AsyncIterable<[Uint8Array, Uint8Array]>;
}

/** What loadStore needs of the 'kvmeta' sublevel. */
export interface MetaSource {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
}

/** Rebuild the store from level; MvccStore.restore checks every invariant on what it reads. */
export async function loadStore(kvSublevel: KvSource, metaSublevel: MetaSource): Promise<MvccStore> {
  const versions: PersistedVersion[] = [];
  for await (const [key, value] of kvSublevel.iterator()) {
    const { revision, tombstone } = decodeRevisionKey(key);
    versions.push({ revision, kv: decodeKeyValue(value), tombstone });
  }
  const compacted = await metaSublevel.get(COMPACTED_REVISION_KEY);
  const current = await metaSublevel.get(CURRENT_REVISION_KEY);
  return MvccStore.restore(versions, {
    compactedRevision: compacted === undefined ? 0 : decodeUint64(compacted),
    currentRevision: current === undefined ? 0 : decodeUint64(current),
  });
}
