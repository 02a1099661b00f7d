/**
 * The log storage the Raft core reads, with one twist: snapshot() is built on demand from the
 * state machine as it stands (at its applied index), not kept as bytes. The core only asks for
 * a snapshot to send to a follower that needs compacted entries, and the applied state is
 * exactly what that follower needs. The recorded snapshot metadata (createSnapshot/
 * applySnapshot) still marks where the log begins.
 */
import { MemoryStorage, type ConfState, type Snapshot } from '../raft/index.js';

export interface SnapshotSource {
  appliedIndex(): number;
  confState(): ConfState;
  build(): Uint8Array;
}

export class ShellStorage extends MemoryStorage {
  private cached: Snapshot | undefined;

  constructor(private readonly source: SnapshotSource) {
    super();
  }

  override snapshot(): Snapshot {
    const recorded = super.snapshot();
    const applied = this.source.appliedIndex();
    // A snapshot installed from the leader carries its data; one recorded locally (log
    // compaction, bootstrap) has none and must be built from the state at the applied index.
    if (applied < recorded.metadata.index) return recorded;
    if (applied === recorded.metadata.index && recorded.data.byteLength > 0) return recorded;
    if (this.cached?.metadata.index === applied) return this.cached;
    this.cached = {
      metadata: { index: applied, term: this.term(applied), confState: this.source.confState() },
      data: this.source.build(),
    };
    return this.cached;
  }
}
