/** Rebuilds the state machine from the state spaces: used at startup and after installing a snapshot. */
import type { Clock } from '../clock.js';
import { loadStore } from '../mvcc/backend.js';
import { Lessor } from '../lease/lessor.js';
import { Membership } from '../cluster/membership.js';
import { decodeNumber, loadLeases, metaKey, type Storage } from '../storage/layout.js';
import type { MachineState } from './state-machine.js';
import { loadCoordinator } from '../coordinator/load.js';
import { loadAuthStore } from '../auth/records.js';
import { TokenTable } from '../auth/tokens.js';
import { loadAlarms } from '../alarm/alarms.js';

export interface LoadOptions {
  readonly minLeaseTtlSeconds: number;
  readonly clock: Clock;
  /** --auth-token-ttl: a simple token's life after its last use, in seconds (default 300). */
  readonly authTokenTtlSeconds?: number;
  /** Bytes of decoded key-value versions cached in memory (MvccStore). */
  readonly versionCacheBytes?: number;
  /** --lease-checkpoint-interval, for the lessor's checkpoint schedule when this member leads; none: no checkpoints. */
  readonly leaseCheckpointIntervalMs?: number;
}

export async function loadMachineState(storage: Storage, options: LoadOptions): Promise<MachineState> {
  const store = await loadStore(storage.space('kv'), storage.space('kvmeta'), options.versionCacheBytes === undefined ? {} : { cacheBytes: options.versionCacheBytes });
  const leases = await loadLeases(storage);
  const lessor = Lessor.restore(
    leases.map((l) => ({ id: l.id, ttlSeconds: l.ttlSeconds, remainingTtlSeconds: l.remainingTtlSeconds })),
    { minTtlSeconds: options.minLeaseTtlSeconds, clock: options.clock, checkpointIntervalMs: options.leaseCheckpointIntervalMs },
  );
  for (const kv of store.keysWithLease()) if (lessor.exists(kv.lease)) lessor.attach(kv.lease, kv.key);
  const keys = Membership.keys();
  const membership = Membership.decode(await storage.get('meta', keys.members), await storage.get('meta', keys.removed));
  const appliedIndex = decodeNumber(await storage.get('meta', metaKey('applied-index'))) ?? 0;
  const coordinator = await loadCoordinator(storage, options.clock);
  // Tokens live in memory only: a restart or a snapshot install forgets them (clients log in again).
  const auth = { store: await loadAuthStore(storage), tokens: new TokenTable(options.clock, options.authTokenTtlSeconds) };
  return { store, lessor, membership, coordinator, auth, alarms: await loadAlarms(storage), appliedIndex };
}
