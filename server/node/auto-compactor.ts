/**
 * The shell around the auto-compaction policy (server/mvcc/auto-compaction.ts): a timer that
 * asks the policy every check interval on every member, and on the leader proposes the
 * compaction it answers through Raft, as a client's Compact would be. One compaction at a time:
 * a check while one is in flight does nothing (etcd's loop blocks on it the same way).
 */
import type { Clock } from '../clock.js';
import { isGavelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ApplyResult } from '../apply/state-machine.js';
import { formatGoDuration, type CompactionPolicy, type CompactionView } from '../mvcc/auto-compaction.js';

export interface AutoCompactorOptions {
  readonly policy: CompactionPolicy;
  /** The member as the policy sees it at each check. */
  readonly view: () => CompactionView;
  /** Proposes `compaction { revision }` and resolves with its applied result. */
  readonly propose: (revision: number) => Promise<ApplyResult>;
  readonly logger: Logger;
  readonly clock: Clock;
}

export class AutoCompactor {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;

  constructor(private readonly options: AutoCompactorOptions) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.check(), this.options.policy.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check: the timer calls it; resolves once the compaction it started (if any) has an outcome. */
  async check(): Promise<void> {
    if (this.inFlight) return;
    const { policy, logger, clock } = this.options;
    const revision = policy.due(this.options.view());
    if (revision === undefined) return;
    this.inFlight = true;
    const fields = { revision, ...this.retentionFields() };
    const startedMs = clock.now();
    logger.info('starting auto compaction', fields);
    try {
      const result = await this.options.propose(revision);
      // An already-compacted revision is success, as in etcd: someone compacted further meanwhile.
      if (result.type === 'error' && !isGavelError(result.error, 'Compacted')) throw result.error;
      policy.done(revision, true);
      logger.info('completed auto compaction', { ...fields, took: formatGoDuration(clock.now() - startedMs) });
    } catch (error) {
      policy.done(revision, false);
      logger.warn('failed auto compaction', { ...fields, retryInterval: formatGoDuration(policy.checkIntervalMs), error });
    } finally {
      this.inFlight = false;
    }
  }

  private retentionFields(): Record<string, string | number> {
    const settings = this.options.policy.settings;
    return settings.mode === 'periodic'
      ? { mode: 'periodic', compactPeriod: formatGoDuration(settings.retentionMs) }
      : { mode: 'revision', revisionCompactionRetention: settings.retentionRevisions };
  }
}
