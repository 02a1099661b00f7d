/**
 * The member's side of snapshot transfer (the transport's SnapshotStreams), so that no snapshot
 * is ever held whole in memory:
 *
 * - Sending: the node prepares a snapshot by taking an explicit level snapshot at a moment when
 *   level holds exactly the applied state (prepare(), called in the Ready loop after the staged
 *   state ops are written). The Raft
 *   snapshot's data field only names it ("gavel-snapshot:level:<id>"); open() streams the state
 *   from it (apply/snapshot.ts streamSnapshot) as the transport sends.
 * - Receiving: the bytes go to a file under <data-dir>/snap, checked on the fly (format, digest,
 *   applied index = the Raft snapshot's index) and synced before the message reaches Raft; its
 *   data field then names the file ("gavel-snapshot:file:<path>"), which the node installs.
 *
 * A prepared level snapshot pins old level files, so it is closed once superseded and unused.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { AbstractSnapshot } from 'abstract-level';
import { assert, GavelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Snapshot, SnapMessage, SnapshotMetadata } from '../raft/types.js';
import { decodeNumber, metaKey, type Storage } from '../storage/layout.js';
import { streamSnapshot } from '../apply/snapshot.js';
import { SnapshotDecoder } from '../apply/snapshot-format.js';
import type { IncomingSnapshot, OutgoingSnapshot, SnapshotStreams } from '../transport/snapshot.js';

const LEVEL_PREFIX = 'gavel-snapshot:level:';
const FILE_PREFIX = 'gavel-snapshot:file:';
const APPLIED_INDEX_KEY = Buffer.from(metaKey('applied-index'));

interface Prepared {
  readonly id: number;
  readonly metadata: SnapshotMetadata;
  readonly level: AbstractSnapshot;
  users: number;
  superseded: boolean;
}

export interface MemberSnapshotsOptions {
  readonly storage: Storage;
  /** <data-dir>/snap */
  readonly directory: string;
  readonly logger: Logger;
  /** Roughly how many bytes a snapshot is (the call's deadline grows with it). */
  readonly estimateBytes: () => number;
}

export class MemberSnapshots implements SnapshotStreams {
  private readonly prepared = new Map<number, Prepared>();
  private nextId = 1;

  constructor(private readonly options: MemberSnapshotsOptions) {}

  /**
   * A snapshot of the state as level holds it NOW, which the caller guarantees is exactly the
   * state at metadata.index (no state write in flight). Supersedes the previous one.
   */
  prepare(metadata: SnapshotMetadata): Snapshot {
    for (const old of this.prepared.values()) {
      old.superseded = true;
      this.closeIfIdle(old);
    }
    const entry: Prepared = { id: this.nextId++, metadata, level: this.options.storage.db.snapshot(), users: 0, superseded: false };
    this.prepared.set(entry.id, entry);
    this.options.logger.info('snapshot prepared', { index: metadata.index, term: metadata.term });
    return { metadata, data: new TextEncoder().encode(`${LEVEL_PREFIX}${entry.id}`) };
  }

  open(m: SnapMessage): OutgoingSnapshot {
    const id = parsePrefixed(m.snapshot.data, LEVEL_PREFIX);
    const entry = id === undefined ? undefined : this.prepared.get(Number(id));
    if (entry === undefined) throw new GavelError('Stopped', 'gavel: the prepared snapshot was superseded');
    assert(entry.metadata.index === m.snapshot.metadata.index, 'a snapshot message names a snapshot of another index');
    entry.users++;
    let closed = false;
    return {
      chunks: streamSnapshot(this.options.storage, entry.level),
      totalBytes: undefined,
      estimatedBytes: this.options.estimateBytes(),
      close: () => {
        if (closed) return;
        closed = true;
        entry.users--;
        this.closeIfIdle(entry);
      },
    };
  }

  receive(header: SnapMessage): IncomingSnapshot {
    return new SnapshotFileWriter(this.options.directory, header.snapshot.metadata.index);
  }

  /** The file a received snapshot's data names, or undefined when it names none. */
  static fileOf(data: Uint8Array): string | undefined {
    return parsePrefixed(data, FILE_PREFIX);
  }

  close(): void {
    for (const entry of this.prepared.values()) void entry.level.close();
    this.prepared.clear();
  }

  private closeIfIdle(entry: Prepared): void {
    if (!entry.superseded || entry.users > 0) return;
    this.prepared.delete(entry.id);
    void entry.level.close();
  }
}

/** Writes a received snapshot to a temporary file, verifying it as it arrives, then renames it. */
class SnapshotFileWriter implements IncomingSnapshot {
  private readonly decoder = new SnapshotDecoder();
  private readonly temporary: string;
  private handle: Promise<FileHandle>;
  private appliedIndex: number | undefined;

  constructor(private readonly directory: string, private readonly index: number) {
    this.temporary = join(directory, `incoming-${randomBytes(6).toString('hex')}.part`);
    this.handle = mkdir(directory, { recursive: true }).then(() => open(this.temporary, 'w'));
  }

  async write(data: Uint8Array): Promise<void> {
    for (const record of this.decoder.push(data)) {
      if (record.space === 'meta' && Buffer.from(record.key).equals(APPLIED_INDEX_KEY)) this.appliedIndex = decodeNumber(record.value);
    }
    const handle = await this.handle;
    for (let offset = 0; offset < data.length; ) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
  }

  async finish(): Promise<Uint8Array> {
    this.decoder.end();
    if (this.appliedIndex !== this.index) {
      throw new GavelError('InvalidArgument', `gavel: bad snapshot: it holds the state at ${this.appliedIndex} but claims ${this.index}`);
    }
    const handle = await this.handle;
    await handle.sync();
    await handle.close();
    const path = join(this.directory, `${this.index}-${randomBytes(4).toString('hex')}.gvsnap`);
    await rename(this.temporary, path);
    return new TextEncoder().encode(`${FILE_PREFIX}${path}`);
  }

  abort(): void {
    void this.handle.then((handle) => handle.close()).catch(() => undefined).then(() => rm(this.temporary, { force: true }));
  }
}

function parsePrefixed(data: Uint8Array, prefix: string): string | undefined {
  const text = new TextDecoder().decode(data);
  return text.startsWith(prefix) ? text.slice(prefix.length) : undefined;
}
