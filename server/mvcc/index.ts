/** The MVCC store: pure in-memory core (store.ts) and its level persistence shell (backend.ts). */
export * from './types.js';
export * from './key-range.js';
export { MvccStore, type WriteResult, type PersistedVersion, type StoreMeta, type LeaseExists } from './store.js';
export type { StoreChange } from './store-change.js';
export {
  changesToBatch,
  toLevelOps,
  loadStore,
  type BackendOp,
  type MvccSpace,
  type KvSource,
  type MetaSource,
  KV_SUBLEVEL,
  META_SUBLEVEL,
  SUBLEVEL_OPTIONS,
} from './backend.js';
export { rangeRequest, putRequest, deleteRangeRequest, txnRequest } from './requests.js';
export { encodeKeyValue, decodeKeyValue, encodeRevisionKey, decodeRevisionKey } from './codec.js';
