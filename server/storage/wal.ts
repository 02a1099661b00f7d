/**
 * The Raft write-ahead log, after etcd's wal package: the log entries, hard state and snapshot
 * markers of a member, appended to segment files under <data-dir>/wal and fdatasync'd once per
 * Ready. An append is one write() and one fdatasync of the bytes it adds: no memtable, no index,
 * no later compaction of records that are deleted anyway once a snapshot covers them (the cost of
 * keeping the Raft log in level).
 *
 * Segments are named <seq>-<firstIndex>.wal (16 hex digits each) and are created full size,
 * filled with zeros, one ahead of need, so an append never grows a file and fdatasync flushes
 * data only. Every record:
 *
 *   u32 payload length | u32 CRC-32 of (type byte + payload) | u8 type | payload
 *
 * A length of zero is the end of the written part. Each segment starts with a header record
 * (its sequence number and first index) followed by the newest snapshot marker and hard state, so
 * older segments can be deleted whole once a snapshot covers their entries.
 *
 * Reading it back (open): entries with an index at or below one seen before replace the suffix
 * from that index (a new leader overwrote a conflicting tail; nothing is rewritten in place). A
 * record that fails its CRC or is cut short at the end of the last segment is a write torn by a
 * crash: the tail from there is zeroed and appends continue there. A bad record anywhere else,
 * with valid data after it, is corruption: open refuses to start rather than replay it.
 */
import { fdatasync, fdatasyncSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from '../raft/index.js';
import { assert } from '../errors.js';
import { crc32 } from '../mvcc/crc32.js';

/** etcd's SegmentSizeBytes. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const RECORD_HEADER_BYTES = 9;
/** How much of a segment is read at a time while replaying it. */
const REPLAY_CHUNK_BYTES = 1024 * 1024;
const ZERO_CHUNK_BYTES = 1024 * 1024;

const enum RecordType {
  Segment = 1,
  Entry = 2,
  HardState = 3,
  Snapshot = 4,
}

/** A snapshot marker: where the log begins, and the received state file to install, if any. */
export interface WalSnapshot {
  readonly metadata: SnapshotMetadata;
  /** A snapshot received from the leader: the file holding its state (apply/snapshot.ts). */
  readonly file?: string;
}

export interface WalState {
  readonly snapshot: WalSnapshot | undefined;
  readonly hardState: HardState | undefined;
  /** Entries after the snapshot, in index order, contiguous. */
  readonly entries: Entry[];
}

export class WalCorruptError extends Error {
  constructor(segment: string, offset: number, reason: string) {
    super(`write-ahead log ${segment} is corrupted at byte ${offset}: ${reason}; refusing to start (restore this member from a healthy one)`);
    this.name = 'WalCorruptError';
  }
}

interface Segment {
  readonly seq: number;
  readonly firstIndex: number;
  readonly path: string;
}

interface Cursor {
  handle: FileHandle;
  segment: Segment;
  /** Where the next record goes. */
  offset: number;
}

export interface WalOptions {
  readonly segmentBytes?: number;
  /** How much of a segment replay reads at a time (tests make it small to cross chunk edges). */
  readonly replayChunkBytes?: number;
}

export class Wal {
  private cursor: Cursor;
  /** The next segment, zero-filled ahead of need. */
  private spare: Promise<{ handle: FileHandle; path: string }> | undefined;
  private segments: Segment[];
  private snapshot: WalSnapshot | undefined;
  private hardState: HardState | undefined;
  private lastIndex: number;
  private closed = false;

  private constructor(
    private readonly directory: string,
    private readonly segmentBytes: number,
    segments: Segment[],
    cursor: Cursor,
    state: WalState,
  ) {
    this.segments = segments;
    this.cursor = cursor;
    this.snapshot = state.snapshot;
    this.hardState = state.hardState;
    this.lastIndex = state.entries.at(-1)?.index ?? state.snapshot?.metadata.index ?? 0;
  }

  /** Whether a write-ahead log exists in the directory. */
  static async exists(directory: string): Promise<boolean> {
    return (await listSegments(directory)).length > 0;
  }

  /** Creates a new log starting after a snapshot (a new member's bootstrap, or a migration). */
  static async create(directory: string, snapshot: WalSnapshot, hardState: HardState, options: WalOptions = {}): Promise<Wal> {
    await mkdir(directory, { recursive: true });
    assert((await listSegments(directory)).length === 0, `${directory} already holds a write-ahead log`);
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const segment = { seq: 1, firstIndex: snapshot.metadata.index + 1, path: join(directory, segmentName(1, snapshot.metadata.index + 1)) };
    const handle = await createZeroed(segment.path, segmentBytes);
    const wal = new Wal(directory, segmentBytes, [segment], { handle, segment, offset: 0 }, { snapshot, hardState, entries: [] });
    await wal.writeSegmentStart();
    await wal.cursor.handle.datasync();
    return wal;
  }

  /** Reads the log back, repairing a torn tail; throws WalCorruptError on corruption. */
  static async open(directory: string, options: WalOptions = {}): Promise<{ wal: Wal; state: WalState }> {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const segments = await listSegments(directory);
    assert(segments.length > 0, `${directory} holds no write-ahead log`);
    const replay = new Replay();
    let end = 0;
    for (const [position, segment] of segments.entries()) {
      end = await replaySegment(segment, position === segments.length - 1, replay, options.replayChunkBytes ?? REPLAY_CHUNK_BYTES);
    }
    const last = segments.at(-1)!;
    const handle = await open(last.path, 'r+');
    const state = replay.state();
    const wal = new Wal(directory, segmentBytes, segments, { handle, segment: last, offset: end }, state);
    return { wal, state };
  }

  /**
   * Appends entries (replacing any suffix from the first one's index) and the hard state; with
   * sync, returns only once they are on disk. Raft's persistence contract: call before sending
   * what depends on them and before advance().
   *
   * sync 'inline' calls fdatasync on this thread, blocking the event loop for the disk's time;
   * true hands it to the thread pool. A thread-pool round trip costs two thread wake-ups, about
   * 50 us of CPU on a virtual machine, more than a fast disk's fdatasync: worth blocking for when
   * nothing else waits on the loop (a follower) and the disk is fast (the caller decides).
   */
  async save(entries: readonly Entry[], hardState: HardState | undefined, sync: boolean | 'inline'): Promise<void> {
    assert(!this.closed, 'write-ahead log is closed');
    const records: Uint8Array[] = [];
    for (const entry of entries) records.push(encodeEntryRecord(entry));
    if (hardState !== undefined) records.push(encodeHardStateRecord(hardState));
    if (records.length > 0) await this.append(records);
    if (entries.length > 0) this.lastIndex = entries.at(-1)!.index;
    if (hardState !== undefined) this.hardState = hardState;
    if (sync === 'inline') fdatasyncSync(this.cursor.handle.fd);
    else if (sync) await this.datasync();
  }

  /** fdatasync through the callback API: the FileHandle promise costs more on every Ready. */
  private datasync(): Promise<void> {
    const fd = this.cursor.handle.fd;
    return new Promise((resolve, reject) => fdatasync(fd, (error) => (error === null ? resolve() : reject(error))));
  }

  /** Records a snapshot marker (and the hard state that goes with it), synced. */
  async saveSnapshot(snapshot: WalSnapshot, hardState?: HardState): Promise<void> {
    assert(!this.closed, 'write-ahead log is closed');
    const records = [encodeSnapshotRecord(snapshot)];
    if (hardState !== undefined) records.push(encodeHardStateRecord(hardState));
    await this.append(records);
    this.snapshot = snapshot;
    if (hardState !== undefined) this.hardState = hardState;
    this.lastIndex = Math.max(this.lastIndex, snapshot.metadata.index);
    await this.datasync();
  }

  /** Deletes segments whose entries are all at or below index (a snapshot covers them). */
  async releaseTo(index: number): Promise<void> {
    // Segment i holds indexes below segment i+1's first index; the last segment is never deleted.
    let keepFrom = 0;
    while (keepFrom + 1 < this.segments.length && this.segments[keepFrom + 1]!.firstIndex <= index + 1) keepFrom++;
    const doomed = this.segments.slice(0, keepFrom);
    this.segments = this.segments.slice(keepFrom);
    for (const segment of doomed) await rm(segment.path, { force: true });
  }

  /** Bytes of the segment files kept (for the database size figures). */
  get segmentCount(): number {
    return this.segments.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cursor.handle.close();
    const spare = await this.spare?.catch(() => undefined);
    if (spare !== undefined) {
      await spare.handle.close();
      await rm(spare.path, { force: true });
    }
  }

  // ---- writing ----

  private async append(records: readonly Uint8Array[]): Promise<void> {
    let bytes = 0;
    for (const record of records) bytes += record.byteLength;
    // A segment always ends with at least one zero header: the reader's end mark.
    if (this.cursor.offset + bytes + RECORD_HEADER_BYTES > this.segmentBytes && this.cursor.offset > 0) await this.rotate();
    const buffer = records.length === 1 ? records[0]! : Buffer.concat(records, bytes);
    if (this.cursor.offset + buffer.byteLength + RECORD_HEADER_BYTES > this.segmentBytes) {
      throw new Error(`a Raft record of ${buffer.byteLength} bytes does not fit in a ${this.segmentBytes}-byte segment`);
    }
    // A synchronous write: it only copies into the page cache (about a microsecond), where the
    // asynchronous one costs a thread-pool round trip per Ready; the fdatasync stays asynchronous.
    const fd = this.cursor.handle.fd;
    for (let written = 0; written < buffer.byteLength; ) {
      written += writeSync(fd, buffer, written, buffer.byteLength - written, this.cursor.offset + written);
    }
    this.cursor.offset += buffer.byteLength;
  }

  /** The current segment is full: sync it, move to the spare one, and start the next spare. */
  private async rotate(): Promise<void> {
    await this.cursor.handle.datasync();
    await this.cursor.handle.close();
    const seq = this.cursor.segment.seq + 1;
    const firstIndex = this.lastIndex + 1;
    const { handle, path } = await (this.spare ?? this.zeroedSpare());
    this.spare = undefined;
    const segment = { seq, firstIndex, path: join(this.directory, segmentName(seq, firstIndex)) };
    await rename(path, segment.path);
    this.segments.push(segment);
    this.cursor = { handle, segment, offset: 0 };
    await this.writeSegmentStart();
    this.spare = this.zeroedSpare();
  }

  private zeroedSpare(): Promise<{ handle: FileHandle; path: string }> {
    const path = join(this.directory, `spare-${process.pid}-${Date.now()}.tmp`);
    return createZeroed(path, this.segmentBytes).then((handle) => ({ handle, path }));
  }

  /** Header, then the newest snapshot marker and hard state: a segment can stand on its own. */
  private async writeSegmentStart(): Promise<void> {
    const records = [encodeSegmentRecord(this.cursor.segment.seq, this.cursor.segment.firstIndex)];
    if (this.snapshot !== undefined) records.push(encodeSnapshotRecord(this.snapshot));
    if (this.hardState !== undefined) records.push(encodeHardStateRecord(this.hardState));
    const buffer = Buffer.concat(records);
    await writeFully(this.cursor.handle, buffer, 0);
    this.cursor.offset = buffer.byteLength;
  }
}

// ---- reading ----

/** What replaying records accumulates. */
class Replay {
  snapshot: WalSnapshot | undefined;
  hardState: HardState | undefined;
  entries: Entry[] = [];

  /**
   * A snapshot installed from the leader (it names a file) replaced the whole log, as the core's
   * restore does; a local one (log compaction) only marks where the log now begins, and drops
   * the entries it covers when it covers them all.
   */
  snapshotAt(snapshot: WalSnapshot): void {
    this.snapshot = snapshot;
    const last = this.entries.at(-1)?.index ?? 0;
    if (snapshot.file !== undefined || last <= snapshot.metadata.index) this.entries = [];
  }

  entry(entry: Entry): void {
    const first = this.entries[0]?.index;
    if (first !== undefined && entry.index <= this.entries.at(-1)!.index) {
      // A later record for an index seen before: the tail from there was replaced.
      this.entries.length = Math.max(0, entry.index - first);
    }
    const last = this.entries.at(-1);
    assert(last === undefined || last.index + 1 === entry.index, `write-ahead log skips from entry ${last?.index} to ${entry.index}`);
    this.entries.push(entry);
  }

  state(): WalState {
    const after = this.snapshot?.metadata.index ?? 0;
    const start = this.entries.findIndex((entry) => entry.index > after);
    const entries = start < 0 ? [] : this.entries.slice(start);
    assert(entries.length === 0 || entries[0]!.index === after + 1 || after === 0, `write-ahead log has no entry right after snapshot ${after}`);
    return { snapshot: this.snapshot, hardState: this.hardState, entries };
  }
}

/**
 * Replays one segment's records, reading it a chunk at a time (a segment is mostly the zeros it
 * was created with; reading it whole held 64 MiB per segment at every start). Returns the offset
 * where its written part ends.
 */
async function replaySegment(segment: Segment, isLast: boolean, replay: Replay, chunkBytes: number): Promise<number> {
  const name = segmentName(segment.seq, segment.firstIndex);
  const handle = await open(segment.path, 'r');
  try {
    const size = (await handle.stat()).size;
    let window = Buffer.alloc(0);
    /** The file offset of window[0]. */
    let base = 0;
    let offset = 0;
    for (;;) {
      // Enough bytes for the next record header, and then for the whole record?
      if (!(await ensure(handle, offset + RECORD_HEADER_BYTES))) return offset;
      const header = offset - base;
      const length = window.readUInt32BE(header);
      if (length === 0 && window.readUInt32BE(header + 4) === 0 && window[header + 8] === 0) return offset; // the end mark
      const end = offset + RECORD_HEADER_BYTES + length;
      const whole = end <= size && (await ensure(handle, end));
      if (!whole) return await repairTail(segment, await readFile(segment.path), offset, isLast, name);
      // ensure() may have moved the window: positions are taken from base again.
      const record = window.subarray(offset - base, end - base);
      const intact = crc32(record.subarray(8)) === record.readUInt32BE(4);
      // Awaited here so that its rejection is handled before the finally closes the file.
      if (!intact) return await repairTail(segment, await readFile(segment.path), offset, isLast, name);
      applyRecord(record[8]!, record.subarray(RECORD_HEADER_BYTES), replay, name, offset);
      offset = end;
    }

    /** Makes window hold the file's bytes up to `upTo` (false past the end of the file). */
    async function ensure(file: FileHandle, upTo: number): Promise<boolean> {
      if (upTo > size) return false;
      if (upTo <= base + window.byteLength) return true;
      const keep = window.subarray(offset - base);
      const want = Math.min(size - offset, Math.max(chunkBytes, upTo - offset));
      const next = Buffer.allocUnsafe(want);
      next.set(keep, 0);
      const { bytesRead } = await file.read(next, keep.byteLength, want - keep.byteLength, offset + keep.byteLength);
      window = next.subarray(0, keep.byteLength + bytesRead);
      base = offset;
      return upTo <= base + window.byteLength;
    }
  } finally {
    await handle.close();
  }
}

/**
 * A bad record: a write torn by a crash when it is in the last segment and no intact record
 * follows it (only the appends since the last fdatasync can be torn, and they are the tail) —
 * the tail is zeroed and appends resume there. An intact record after a bad one means the bad
 * one was once whole: corruption, which is never replayed.
 */
async function repairTail(segment: Segment, bytes: Buffer, offset: number, isLast: boolean, name: string): Promise<number> {
  if (!isLast) throw new WalCorruptError(name, offset, 'a record fails its checksum in a segment that is not the last');
  const later = intactRecordAfter(bytes, offset + 1);
  if (later >= 0) throw new WalCorruptError(name, offset, `a record fails its checksum and an intact record follows at byte ${later}`);
  const handle = await open(segment.path, 'r+');
  try {
    await writeFully(handle, Buffer.alloc(bytes.byteLength - offset), offset);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  return offset;
}

/** The offset of the first intact record starting at or after from, or -1 (zeros are skipped fast). */
function intactRecordAfter(bytes: Buffer, from: number): number {
  for (let offset = from; offset + RECORD_HEADER_BYTES <= bytes.byteLength; offset++) {
    if (bytes[offset] === 0 && bytes.readUInt32BE(offset) === 0) continue;
    const type = bytes[offset + 8]!;
    if (type < RecordType.Segment || type > RecordType.Snapshot) continue;
    const end = offset + RECORD_HEADER_BYTES + bytes.readUInt32BE(offset);
    if (end > bytes.byteLength) continue;
    if (crc32(bytes.subarray(offset + 8, end)) === bytes.readUInt32BE(offset + 4)) return offset;
  }
  return -1;
}

function applyRecord(type: number, payload: Buffer, replay: Replay, name: string, offset: number): void {
  switch (type) {
    case RecordType.Segment:
      return;
    case RecordType.Entry:
      replay.entry(decodeEntryRecord(payload));
      return;
    case RecordType.HardState:
      replay.hardState = decodeHardStateRecord(payload);
      return;
    case RecordType.Snapshot:
      replay.snapshotAt(decodeSnapshotRecord(payload));
      return;
    default:
      throw new WalCorruptError(name, offset, `unknown record type ${type}`);
  }
}

// ---- records ----

function record(type: RecordType, payload: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.byteLength);
  bytes.writeUInt32BE(payload.byteLength, 0);
  bytes[8] = type;
  bytes.set(payload, RECORD_HEADER_BYTES);
  bytes.writeUInt32BE(crc32(bytes.subarray(8)), 4);
  return bytes;
}

function encodeSegmentRecord(seq: number, firstIndex: number): Buffer {
  const payload = Buffer.alloc(16);
  payload.writeBigUInt64BE(BigInt(seq), 0);
  payload.writeBigUInt64BE(BigInt(firstIndex), 8);
  return record(RecordType.Segment, payload);
}

function encodeEntryRecord(entry: Entry): Buffer {
  const payload = Buffer.allocUnsafe(17 + entry.data.byteLength);
  writeU64(payload, entry.index, 0);
  writeU64(payload, entry.term, 8);
  payload[16] = entry.type === 'normal' ? 0 : 1;
  payload.set(entry.data, 17);
  return record(RecordType.Entry, payload);
}

function decodeEntryRecord(payload: Buffer): Entry {
  assert(payload.byteLength >= 17, 'entry record too short');
  const code = payload[16];
  assert(code === 0 || code === 1, `entry record of unknown type ${code}`);
  const type: EntryType = code === 0 ? 'normal' : 'confChange';
  return { index: readU64(payload, 0), term: readU64(payload, 8), type, data: new Uint8Array(payload.subarray(17)) };
}

function encodeHardStateRecord(hs: HardState): Buffer {
  const payload = Buffer.allocUnsafe(24);
  writeU64(payload, hs.term, 0);
  payload.writeBigUInt64BE(hs.vote, 8);
  writeU64(payload, hs.commit, 16);
  return record(RecordType.HardState, payload);
}

function decodeHardStateRecord(payload: Buffer): HardState {
  assert(payload.byteLength === 24, 'hard state record has the wrong size');
  return { term: readU64(payload, 0), vote: payload.readBigUInt64BE(8), commit: readU64(payload, 16) };
}

function encodeSnapshotRecord(snapshot: WalSnapshot): Buffer {
  const { index, term, confState } = snapshot.metadata;
  const json = JSON.stringify({ index, term, voters: confState.voters.map(String), learners: confState.learners.map(String), file: snapshot.file });
  return record(RecordType.Snapshot, Buffer.from(json));
}

function decodeSnapshotRecord(payload: Buffer): WalSnapshot {
  const raw = JSON.parse(payload.toString()) as { index: number; term: number; voters: string[]; learners: string[]; file?: string };
  const confState: ConfState = { voters: raw.voters.map(BigInt), learners: raw.learners.map(BigInt) };
  const metadata = { index: raw.index, term: raw.term, confState };
  return raw.file === undefined ? { metadata } : { metadata, file: raw.file };
}

function writeU64(bytes: Buffer, value: number, offset: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `${value} is not a non-negative safe integer`);
  bytes.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset);
  bytes.writeUInt32BE(value % 0x1_0000_0000, offset + 4);
}

function readU64(bytes: Buffer, offset: number): number {
  const high = bytes.readUInt32BE(offset);
  assert(high <= 0x1fffff, 'a 64-bit number in the write-ahead log is not a safe integer');
  return high * 0x1_0000_0000 + bytes.readUInt32BE(offset + 4);
}

// ---- files ----

function segmentName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;
}

async function listSegments(directory: string): Promise<Segment[]> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const segments: Segment[] = [];
  for (const name of names) {
    const match = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
    if (match === null) continue;
    segments.push({ seq: parseInt(match[1]!, 16), firstIndex: parseInt(match[2]!, 16), path: join(directory, name) });
  }
  segments.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segments.length; i++) {
    assert(segments[i]!.seq === segments[i - 1]!.seq + 1, `write-ahead log segment ${segments[i - 1]!.seq + 1} is missing`);
  }
  return segments;
}

/** A file of size bytes of zeros, written out (not sparse) and synced: appends only overwrite. */
async function createZeroed(path: string, size: number): Promise<FileHandle> {
  const handle = await open(path, 'w+');
  const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, size));
  for (let offset = 0; offset < size; offset += zeros.byteLength) {
    await writeFully(handle, zeros.subarray(0, Math.min(zeros.byteLength, size - offset)), offset);
  }
  await handle.sync();
  return handle;
}

async function writeFully(handle: FileHandle, buffer: Uint8Array, position: number): Promise<void> {
  for (let written = 0; written < buffer.byteLength; ) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.byteLength - written, position + written);
    written += bytesWritten;
  }
}
