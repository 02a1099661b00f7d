/**
 * The log storage the Raft core reads, with one twist: snapshot() never builds a snapshot itself.
 * The core only asks for one to send to a follower that needs compacted entries; the state it
 * must carry is level's, and level holds exactly the applied state only once the node has
 * written its staged state ops. So snapshot() answers with the snapshot the node prepared there (prepared()), and
 * until one exists — or when the one prepared is older than the log's start — it says
 * 'snapshotTemporarilyUnavailable' and raises wantsSnapshot; the node prepares one after its
 * next Ready and the core retries on the follower's next response (etcd's raft does the same).
 * The recorded snapshot metadata (createSnapshot/applySnapshot) still marks where the log begins.
 */
import { MemoryStorage, StorageError, type Snapshot } from '../raft/index.js';

export class ShellStorage extends MemoryStorage {
  private ready: Snapshot | undefined;
  private wanted = false;

  /** The core asked for a snapshot the node has not prepared yet. */
  get wantsSnapshot(): boolean {
    return this.wanted;
  }

  /** A snapshot the node prepared (node/snapshots.ts) at its applied index. */
  prepared(snapshot: Snapshot): void {
    this.ready = snapshot;
    this.wanted = false;
  }

  override snapshot(): Snapshot {
    const recorded = super.snapshot();
    if (this.ready !== undefined && this.ready.metadata.index >= recorded.metadata.index) return this.ready;
    this.wanted = true;
    throw new StorageError('snapshotTemporarilyUnavailable');
  }
}
