/** A thin client of the server-side lock (v3lockpb.Lock), with gavel's deadline and try-lock extensions. */
import { headerFromWire, type Bytes, type Header } from './kv.js';
import { toBuffer } from './kv.js';
import type { CallOptions, Rpc } from './rpc.js';

export interface ServerLockOptions extends CallOptions {
  /** The lease the lock key is attached to; its expiry releases the lock. */
  readonly lease: bigint;
  /** Do not wait: fail with LockBusyError if the lock is held (gavel extension). */
  readonly tryLock?: boolean;
  /** Let the server give up after this long, answering LockBusyError (gavel extension). */
  readonly waitMs?: number;
}

export interface ServerLock {
  /** The lock key, `name/<lease hex>`; pass it to unlock(). */
  readonly key: Buffer;
  readonly header: Header;
}

export class LockService {
  constructor(private readonly rpc: Rpc) {}

  async lock(name: Bytes, options: ServerLockOptions): Promise<ServerLock> {
    const request = { name: toBuffer(name), lease: String(options.lease), wait_ms: String(options.waitMs ?? 0), try_lock: options.tryLock === true };
    // Re-sending a Lock with the same lease re-attaches to the same key, so retries are safe.
    const r = await this.rpc.unary<{ header?: object; key?: Buffer }>('v3lockpb.Lock', 'Lock', request, 'idempotent', options, true);
    return { key: r.key ?? Buffer.alloc(0), header: headerFromWire(r.header) };
  }

  async unlock(key: Bytes, options: CallOptions = {}): Promise<Header> {
    const r = await this.rpc.unary<{ header?: object }>('v3lockpb.Lock', 'Unlock', { key: toBuffer(key) }, 'idempotent', options);
    return headerFromWire(r.header);
  }
}
