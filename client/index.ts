/** gavel's TypeScript client: KV, leases, watches, sessions, fenced mutexes and elections. */
export { Client, type ClientOptions } from './client.js';
export type { Channel, ChannelCallOptions, ChannelStream, ServiceName, TlsOptions } from './channel.js';
export { Election, type LeaderChange, type LeaderKey } from './election.js';
export * from './errors.js';
export { KV, compare, op, prefixEnd, type Bytes, type Compare, type CompareResult, type DeleteOptions, type DeleteResult, type Header, type KeyValue, type Op, type OpResult, type PutOptions, type PutResult, type RangeOptions, type RangeResult, type TxnRequest, type TxnResult } from './kv.js';
export { Lease, leaseHex, type LeaseGrant, type LeaseTimeToLive } from './lease.js';
export { LockService, type ServerLock, type ServerLockOptions } from './lock-service.js';
export { Mutex, type LockOptions, type MutexMode, type MutexOptions } from './mutex.js';
export { CoordinatorApi, CoordinatorLock, CoordinatorMutex, RWLock, Semaphore, type AcquireOptions, type AcquireUpdate, type CoordinatorLockMode, type CoordinatorLockOptions, type GrantedUpdate, type HolderInfo, type LockDescription, type WaitUpdate, type WaiterInfo } from './coordinator.js';
export type { CallOptions, Credentials } from './rpc.js';
export { DEFAULT_SESSION_TTL_SECONDS, Session, type SessionOptions, type SessionState } from './session.js';
export { Watcher, type WatchBatch, type WatchEvent, type WatchOptions } from './watch.js';
