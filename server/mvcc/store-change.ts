/**
 * What a store write asks the persistence shell to record. The node's apply loop turns these into
 * level operations (backend.ts changesToBatch) in the SAME batch as the applied index.
 */
import type { KeyValue, Revision } from './types.js';

export type StoreChange =
  /** A new version of a key; a tombstone records a delete (kv carries the key and modRevision). */
  | { readonly type: 'put'; readonly revision: Revision; readonly kv: KeyValue; readonly tombstone: boolean }
  /**
   * Revision counters. compactedRevision is the compaction the index has done; the versions it
   * dropped are deleted from level afterwards, in bounded batches (compactor.ts), which then
   * records finishedCompactRevision. A restart between the two finishes the job.
   */
  | { readonly type: 'meta'; readonly compactedRevision?: number; readonly currentRevision?: number; readonly finishedCompactRevision?: number };
