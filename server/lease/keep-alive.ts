/**
 * The leader's answer to one keep-alive, shared by the node shell and the tests that drive it on
 * a fake clock. The order is the contract: STAMP on arrival, then wait for the applied index,
 * then answer. The stamp makes the keep-alive count from the moment the leader received it, so a
 * member busy applying a backlog cannot expire a lease whose client kept it alive; the wait makes
 * the answer reflect every entry committed before the keep-alive (a grant still being applied is
 * found, a committed revoke is not renewed), as etcd 3.5's waitAppliedIndex does.
 */
import type { Lessor } from './lessor.js';

export interface KeepAliveLeader {
  /** The current lessor: installing a snapshot replaces it. */
  readonly lessor: () => Lessor;
  readonly isLeader: () => boolean;
  /** Resolves once every entry committed so far (read when called) is applied. */
  readonly caughtUp: () => Promise<void>;
}

export interface KeepAliveAnswer {
  /** The granted TTL, etcd's keep-alive answer. */
  readonly ttlSeconds: number;
  /** The lease's checkpoint went stale with this renew: the caller proposes checkpoint(id, 0). */
  readonly clearCheckpoint: boolean;
}

/**
 * Must be called synchronously when the keep-alive arrives (before any await). Resolves to
 * undefined when leadership went while the answer waited (the caller asks the new leader); throws
 * LeaseNotFound for a lease that is gone or already handed out for its revoke.
 */
export async function renewOnLeader(leader: KeepAliveLeader, id: bigint): Promise<KeepAliveAnswer | undefined> {
  const arrivedMs = leader.lessor().stamp(id);
  await leader.caughtUp();
  if (!leader.isLeader()) return undefined;
  const lessor = leader.lessor();
  const ttlSeconds = lessor.renew(id, arrivedMs);
  return { ttlSeconds, clearCheckpoint: lessor.takeStaleCheckpoint(id) };
}
