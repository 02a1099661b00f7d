/**
 * The simulator's Raft invariants (Raft paper, Figure 3), checked as the run goes:
 * - election safety: at most one leader per term;
 * - leader completeness: a new leader's log holds every entry already known committed;
 * - state-machine safety: every member applies the same entry at each index, in index order;
 * - log matching: two logs that agree on (index, term) agree on every entry up to it
 *   (checkLogMatching, run periodically and at the end).
 * The first violation is kept; the simulator stops there.
 */
import { bytesEqual, type Entry, type NodeId, type RaftLog } from '../../server/raft/index.js';

export type ViolationKind =
  | 'electionSafety'
  | 'leaderCompleteness'
  | 'stateMachineSafety'
  | 'logMatching'
  | 'linearizability'
  | 'liveness'
  | 'convergence'
  | 'crash';

export interface Violation {
  readonly kind: ViolationKind;
  /** Simulated time (units) when it was detected. */
  readonly time: number;
  readonly message: string;
}

/** What the monitor needs to see of a member's log. */
export interface LogView {
  readonly id: NodeId;
  readonly log: RaftLog;
}

export class SafetyMonitor {
  violation: Violation | undefined = undefined;
  private readonly leaders = new Map<number, NodeId>();
  /** Entries known committed (applied by some member), by index. */
  private readonly committed = new Map<number, Entry>();
  private committedMax = 0;
  /** Who first applied each index, for messages. */
  private readonly firstApplier = new Map<number, NodeId>();
  leaderElections = 0;

  constructor(private readonly now: () => number) {}

  fail(kind: ViolationKind, message: string): void {
    if (this.violation === undefined) this.violation = { kind, time: this.now(), message };
  }

  get failed(): boolean {
    return this.violation !== undefined;
  }

  /** A member reports that it became leader of `term`; `view.log` is its log at that moment. */
  onLeader(view: LogView, term: number): void {
    this.leaderElections++;
    const other = this.leaders.get(term);
    if (other !== undefined && other !== view.id) {
      this.fail('electionSafety', `two leaders in term ${term}: n${other} and n${view.id}`);
      return;
    }
    this.leaders.set(term, view.id);
    this.checkLeaderCompleteness(view, term);
  }

  private checkLeaderCompleteness(view: LogView, term: number): void {
    const log = view.log;
    const from = Math.max(log.committed + 1, log.firstIndex());
    for (let index = from; index <= this.committedMax; index++) {
      const entry = this.committed.get(index);
      if (entry === undefined) continue;
      const have = log.term(index);
      if (have !== entry.term) {
        this.fail('leaderCompleteness',
          `n${view.id} became leader of term ${term} without committed entry ${index} (term ${entry.term}, applied by n${this.firstApplier.get(index)}); its log has ${have === undefined ? 'nothing' : `term ${have}`} there (last index ${log.lastIndex()})`);
        return;
      }
    }
  }

  /** A member applies a committed entry. */
  onApply(id: NodeId, entry: Entry): void {
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, entry);
      this.firstApplier.set(entry.index, id);
      if (entry.index > this.committedMax) this.committedMax = entry.index;
      return;
    }
    if (known.term !== entry.term || known.type !== entry.type || !bytesEqual(known.data, entry.data)) {
      this.fail('stateMachineSafety',
        `n${id} applied entry ${entry.index} term ${entry.term} (${describeData(entry)}) but n${this.firstApplier.get(entry.index)} applied term ${known.term} (${describeData(known)}) there`);
    }
  }

  /** Log matching over every pair of logs, on the entries both still hold. */
  checkLogMatching(views: readonly LogView[]): void {
    for (let i = 0; i < views.length; i++) {
      for (let j = i + 1; j < views.length; j++) {
        this.checkPair(views[i]!, views[j]!);
        if (this.failed) return;
      }
    }
  }

  private checkPair(a: LogView, b: LogView): void {
    const lo = Math.max(a.log.firstIndex(), b.log.firstIndex());
    let hi = Math.min(a.log.lastIndex(), b.log.lastIndex());
    // The highest index where both logs have the same term: everything up to it must match.
    while (hi >= lo && a.log.term(hi) !== b.log.term(hi)) hi--;
    if (hi < lo) return;
    const ea = a.log.slice(lo, hi + 1, Number.MAX_SAFE_INTEGER);
    const eb = b.log.slice(lo, hi + 1, Number.MAX_SAFE_INTEGER);
    if (ea === undefined || eb === undefined) return;
    for (let k = 0; k < ea.length; k++) {
      const x = ea[k]!;
      const y = eb[k]!;
      if (x.term !== y.term || !bytesEqual(x.data, y.data)) {
        this.fail('logMatching',
          `n${a.id} and n${b.id} agree on entry ${hi} (term ${a.log.term(hi)}) but differ at ${x.index}: term ${x.term} (${describeData(x)}) vs term ${y.term} (${describeData(y)})`);
        return;
      }
    }
  }
}

const decoder = new TextDecoder();

export function describeData(entry: Entry): string {
  if (entry.type === 'confChange') return 'confChange';
  if (entry.data.byteLength === 0) return 'no-op';
  return decoder.decode(entry.data);
}
