/**
 * What a store write asks the persistence shell to record. The node's apply loop turns these into
 * level operations (backend.ts changesToBatch) in the SAME batch as the applied index.
 */
import type { KeyValue, Revision } from './types.js';

export type StoreChange =
  /** A new version of a key; a tombstone records a delete (kv carries the key and modRevision). */
  | { readonly type: 'put'; readonly revision: Revision; readonly kv: KeyValue; readonly tombstone: boolean }
  /** A version dropped by compaction; tombstone says which backend key spelling it was stored under. */
  | { readonly type: 'remove'; readonly revision: Revision; readonly tombstone: boolean }
  | { readonly type: 'meta'; readonly compactedRevision?: number; readonly currentRevision?: number };
