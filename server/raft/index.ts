/**
 * The Raft core: a pure, synchronous state machine. See raw-node.ts for the Ready/advance
 * protocol and the persistence contract, bootstrap.ts for starting and restarting members.
 */
export * from './types.js';
export * from './storage.js';
export { RawNode } from './raw-node.js';
export { BOOTSTRAP_INDEX, BOOTSTRAP_TERM, bootstrapStorage } from './bootstrap.js';
export { decodeConfChange, encodeConfChange } from './conf-change.js';
export {
  describeBytes, describeConfState, describeEntries, describeEntry, describeMessage, describeReady,
  describeSnapshot,
} from './describe.js';
export { assert, assertNever, bytesEqual, entrySizeBytes, limitSize } from './util.js';
// Internals, exported for tests, the simulator and debugging tools; not a stable API.
export { Raft, validateConfig } from './raft.js';
export { RaftLog } from './log.js';
export { Inflights, Progress, ProgressTracker } from './progress.js';
export { ReadOnly } from './read-only.js';
