/**
 * Ending lock-delays: the process that counts time (the Raft leader, or the central process)
 * proposes an end for each delay its clock says is over; applying it frees the lock. The end
 * names the delay's id, so an end proposed late for an older delay ends nothing.
 */
import type { Logger } from '../log.js';
import type { Consensus } from '../node/consensus.js';
import type { Coordinator } from './coordinator.js';

export function proposeDueDelayEnds(coordinator: Coordinator, node: Pick<Consensus, 'propose'>, logger: Logger, limit: number): void {
  for (const due of coordinator.dueDelays(limit)) {
    const end_delay = { name: Buffer.from(due.key, 'latin1'), delay_id: String(due.delayId) };
    node.propose({ coordinator: { end_delay } }).catch((error: unknown) => logger.debug('ending a lock-delay failed', { error }));
  }
}
