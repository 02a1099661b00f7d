/**
 * Reading a backup file (the stream Maintenance.Snapshot sent, as `etcdctl snapshot save` wrote
 * it): one pass through the checking decoder (apply/snapshot-format.ts), a chunk at a time, that
 * also sums up what the file holds. Nothing may be acted on before the pass has ended without an
 * error: the digest is only known to match at the very end.
 */
import { createReadStream } from 'node:fs';
import { GavelError } from '../errors.js';
import { DIGEST_BYTES, SnapshotDecoder, type SnapshotRecord } from '../apply/snapshot-format.js';
import { APPLIED_INDEX_KEY, SNAPSHOT_CHUNK_BYTES, STATE_META_KEYS, STATE_SPACES } from '../apply/snapshot.js';
import { COMPACTED_REVISION_KEY, CURRENT_REVISION_KEY } from '../mvcc/backend.js';
import { decodeUint64 } from '../mvcc/codec.js';
import { decodeNumber, readU64 } from '../storage/layout.js';

export interface SnapshotSummary {
  /** The applied index of the member's state when the backup was taken. */
  readonly appliedIndex: number;
  /** The MVCC revision and compaction point it holds. */
  readonly revision: number;
  readonly compactedRevision: number;
  /** Records in the file, and those of the key-value history (one per key revision). */
  readonly records: number;
  readonly kvRecords: number;
  readonly leases: number;
  /** The file's size and its SHA-256 trailer (hex). */
  readonly sizeBytes: number;
  readonly sha256: string;
}

/** Adds up records as they are decoded; refuses any the state spaces do not hold (pure). */
export class SummaryBuilder {
  private appliedIndex: number | undefined;
  private revision = 0;
  private compactedRevision = 0;
  private records = 0;
  private kvRecords = 0;
  private leases = 0;

  add(record: SnapshotRecord): void {
    this.records++;
    if (record.space === 'kv') this.addKv(record);
    else if (record.space === 'lease') this.leases++;
    else if (record.space === 'kvmeta') this.addKvMeta(record);
    else if (record.space === 'meta') this.addMeta(record);
    else if (!STATE_SPACES.includes(record.space)) throw bad(`a record of space '${record.space}', which snapshots never hold`);
  }

  finish(sizeBytes: number, trailer: Uint8Array | undefined): SnapshotSummary {
    if (this.appliedIndex === undefined) throw bad('it records no applied index');
    if (trailer === undefined || trailer.byteLength !== DIGEST_BYTES) throw bad('the snapshot is truncated');
    const sha256 = Buffer.from(trailer).toString('hex');
    return { appliedIndex: this.appliedIndex, revision: this.revision, compactedRevision: this.compactedRevision, records: this.records, kvRecords: this.kvRecords, leases: this.leases, sizeBytes, sha256 };
  }

  /** A history record: its key starts with the main revision (mvcc/codec.ts); the newest is the store's revision. */
  private addKv(record: SnapshotRecord): void {
    this.kvRecords++;
    if (record.key.byteLength < 8) throw bad('a key-value record without a revision');
    this.revision = Math.max(this.revision, Number(readU64(record.key)));
  }

  private addKvMeta(record: SnapshotRecord): void {
    if (record.value.byteLength !== 8) throw bad('a revision record is not 8 bytes long');
    // Recorded when no version holds the revision any more (mvcc/backend.ts); else the history tells.
    if (sameBytes(record.key, CURRENT_REVISION_KEY)) this.revision = Math.max(this.revision, decodeUint64(record.value));
    if (sameBytes(record.key, COMPACTED_REVISION_KEY)) this.compactedRevision = decodeUint64(record.value);
  }

  private addMeta(record: SnapshotRecord): void {
    if (!STATE_META_KEYS.some((key) => sameBytes(key, record.key))) throw bad(`a member record '${Buffer.from(record.key).toString()}', which snapshots never hold`);
    if (!sameBytes(record.key, APPLIED_INDEX_KEY)) return;
    const index = decodeNumber(record.value);
    if (index === undefined || index < 0) throw bad('its applied index is not a number');
    this.appliedIndex = index;
  }
}

/**
 * Reads and checks the whole file; `onRecords` (if given) sees each chunk's records in order and
 * may write them somewhere provisional. Throws InvalidArgument "gavel: bad snapshot: ..." for a
 * truncated, corrupted or foreign file.
 */
export async function readSnapshotFile(
  path: string,
  options: { readonly checkDigest: boolean },
  onRecords?: (records: readonly SnapshotRecord[]) => Promise<void>,
): Promise<SnapshotSummary> {
  const decoder = new SnapshotDecoder({ checkDigest: options.checkDigest });
  const summary = new SummaryBuilder();
  let sizeBytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: SNAPSHOT_CHUNK_BYTES })) {
    const bytes = chunk as Buffer;
    sizeBytes += bytes.byteLength;
    const records = decoder.push(bytes);
    for (const record of records) summary.add(record);
    if (onRecords !== undefined && records.length > 0) await onRecords(records);
  }
  decoder.end();
  return summary.finish(sizeBytes, decoder.trailer);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function bad(reason: string): GavelError {
  return new GavelError('InvalidArgument', `gavel: bad snapshot: ${reason}`);
}
