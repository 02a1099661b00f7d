/**
 * gavel.raft.v1.MessageBatch straight between Raft Messages and bytes, in protobuf's wire format
 * for the messages of proto/gavel/raft.proto (field numbers there; a unit test checks both
 * directions against protobufjs). Every append, heartbeat and response of every member crosses
 * here, so there is no object round trip: no proto-loader objects, no uint64 decimal strings, no
 * `long` values — numbers stay numbers and member ids stay bigints.
 *
 * Encoding a malformed Message is a programmer error (assert); decoding malformed bytes is an
 * operating error (GavelError InvalidArgument), because they came from a peer.
 */
import { assert, assertNever, GavelError } from '../errors.js';
import type { ConfState, Entry, EntryType, Message, MessageType, NodeId, Snapshot } from '../raft/types.js';
import { WIRE_ENTRY_TYPE, WIRE_MESSAGE_TYPE } from './codec.js';

export interface Batch {
  readonly messages: Message[];
  readonly seq: number;
  readonly wantAck: boolean;
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const EMPTY: Uint8Array = new Uint8Array(0);
const UINT64_MAX = (1n << 64n) - 1n;
const MESSAGE_TYPE_BY_NUMBER = new Map<number, MessageType>(Object.entries(WIRE_MESSAGE_TYPE).map(([name, number]) => [number, name as MessageType]));

// ---- encoding ----

/**
 * Two passes over the same field list: size() counts a message's bytes, write() emits them, so a
 * nested message's length is known before its bytes are written (no shifting, one allocation).
 * Both walk fields through the same per-type table (messageFields), so they cannot disagree.
 */
type Field =
  | { readonly kind: 'number'; readonly field: number; readonly value: number }
  | { readonly kind: 'id'; readonly field: number; readonly value: NodeId }
  | { readonly kind: 'bool'; readonly field: number; readonly value: boolean }
  | { readonly kind: 'bytes'; readonly field: number; readonly value: Uint8Array };

/** The scalar fields of a message, per type (entries and the snapshot are written after them). */
function scalarFields(m: Message): Field[] {
  const fields: Field[] = [
    { kind: 'number', field: 1, value: WIRE_MESSAGE_TYPE[m.type] },
    { kind: 'id', field: 2, value: m.from },
    { kind: 'id', field: 3, value: m.to },
    { kind: 'number', field: 4, value: m.term },
  ];
  switch (m.type) {
    case 'prop':
    case 'timeoutNow':
    case 'snap':
      break;
    case 'app':
      fields.push({ kind: 'number', field: 5, value: m.logTerm }, { kind: 'number', field: 6, value: m.index }, { kind: 'number', field: 8, value: m.commit });
      break;
    case 'appResp':
      fields.push({ kind: 'number', field: 5, value: m.logTerm }, { kind: 'number', field: 6, value: m.index }, { kind: 'bool', field: 9, value: m.reject }, { kind: 'number', field: 10, value: m.rejectHint });
      break;
    case 'vote':
    case 'preVote':
      fields.push({ kind: 'number', field: 5, value: m.logTerm }, { kind: 'number', field: 6, value: m.index }, { kind: 'bool', field: 12, value: m.transfer });
      break;
    case 'voteResp':
    case 'preVoteResp':
      fields.push({ kind: 'bool', field: 9, value: m.reject });
      break;
    case 'heartbeat':
      fields.push({ kind: 'number', field: 8, value: m.commit }, { kind: 'bytes', field: 11, value: m.context });
      break;
    case 'heartbeatResp':
    case 'readIndex':
      fields.push({ kind: 'bytes', field: 11, value: m.context });
      break;
    case 'transferLeader':
      fields.push({ kind: 'id', field: 13, value: m.transferee });
      break;
    case 'readIndexResp':
      fields.push({ kind: 'number', field: 6, value: m.index }, { kind: 'bytes', field: 11, value: m.context });
      break;
    default:
      assertNever(m);
  }
  return fields;
}

function fieldSize(f: Field): number {
  switch (f.kind) {
    case 'number':
      return f.value === 0 ? 0 : tagBytes(f.field) + varintBytes(f.value);
    case 'id':
      return f.value === 0n ? 0 : tagBytes(f.field) + bigVarintBytes(f.value);
    case 'bool':
      return f.value ? tagBytes(f.field) + 1 : 0;
    case 'bytes':
      return f.value.byteLength === 0 ? 0 : lengthDelimited(f.field, f.value.byteLength);
  }
}

function lengthDelimited(field: number, size: number): number {
  return tagBytes(field) + varintBytes(size) + size;
}

function entrySize(entry: Entry): number {
  let size = 0;
  if (entry.term !== 0) size += 1 + varintBytes(entry.term);
  if (entry.index !== 0) size += 1 + varintBytes(entry.index);
  if (entry.type !== 'normal') size += 2;
  if (entry.data.byteLength > 0) size += lengthDelimited(4, entry.data.byteLength);
  return size;
}

interface Sized {
  readonly message: Message;
  readonly fields: Field[];
  readonly entrySizes: number[];
  readonly snapshot: { readonly metadata: number; readonly conf: number; readonly total: number } | undefined;
  readonly size: number;
}

function sizeMessage(m: Message): Sized {
  const fields = scalarFields(m);
  let size = 0;
  for (const f of fields) size += fieldSize(f);
  const entrySizes: number[] = [];
  if (m.type === 'app' || m.type === 'prop') {
    for (const entry of m.entries) {
      const entryBytes = entrySize(entry);
      entrySizes.push(entryBytes);
      size += lengthDelimited(7, entryBytes);
    }
  }
  let snapshot: Sized['snapshot'];
  if (m.type === 'snap') {
    const { index, term, confState } = m.snapshot.metadata;
    let conf = 0;
    for (const voter of confState.voters) conf += fieldSize({ kind: 'id', field: 1, value: voter });
    for (const learner of confState.learners) conf += fieldSize({ kind: 'id', field: 2, value: learner });
    const metadata = fieldSize({ kind: 'number', field: 1, value: index }) + fieldSize({ kind: 'number', field: 2, value: term }) + (conf === 0 ? 0 : lengthDelimited(3, conf));
    const total = lengthDelimited(1, metadata) + fieldSize({ kind: 'bytes', field: 2, value: m.snapshot.data });
    snapshot = { metadata, conf, total };
    size += lengthDelimited(14, total);
  }
  return { message: m, fields, entrySizes, snapshot, size };
}

class Writer {
  private readonly bytes: Buffer;
  private length = 0;

  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size);
  }

  finish(): Uint8Array {
    assert(this.length === this.bytes.byteLength, `wrote ${this.length} of ${this.bytes.byteLength} sized bytes`);
    return this.bytes;
  }

  varint(value: number): void {
    while (value >= 0x80) {
      this.bytes[this.length++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.bytes[this.length++] = value;
  }

  bigVarint(value: bigint): void {
    this.raw(idVarint(value));
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  raw(bytes: Uint8Array): void {
    this.bytes.set(bytes, this.length);
    this.length += bytes.byteLength;
  }

  field(f: Field): void {
    switch (f.kind) {
      case 'number':
        if (f.value === 0) return;
        assert(Number.isSafeInteger(f.value) && f.value >= 0, `raft number ${f.value} is not a non-negative safe integer`);
        this.tag(f.field, VARINT);
        this.varint(f.value);
        return;
      case 'id':
        if (f.value === 0n) return;
        assert(f.value > 0n && f.value <= UINT64_MAX, `member id ${f.value} out of uint64 range`);
        this.tag(f.field, VARINT);
        this.bigVarint(f.value);
        return;
      case 'bool':
        if (!f.value) return;
        this.tag(f.field, VARINT);
        this.varint(1);
        return;
      case 'bytes':
        if (f.value.byteLength === 0) return;
        this.tag(f.field, LENGTH_DELIMITED);
        this.varint(f.value.byteLength);
        this.raw(f.value);
        return;
    }
  }
}

export function encodeBatch(messages: readonly Message[], seq: number, wantAck: boolean): Uint8Array {
  const sized = messages.map(sizeMessage);
  const tail: Field[] = [{ kind: 'number', field: 2, value: seq }, { kind: 'bool', field: 3, value: wantAck }];
  let size = 0;
  // Every message is sent, all-default or not.
  for (const s of sized) size += lengthDelimited(1, s.size);
  for (const f of tail) size += fieldSize(f);
  const writer = new Writer(size);
  for (const s of sized) {
    writer.tag(1, LENGTH_DELIMITED);
    writer.varint(s.size);
    writeMessage(writer, s);
  }
  for (const f of tail) writer.field(f);
  return writer.finish();
}

function writeMessage(w: Writer, s: Sized): void {
  const m = s.message;
  // Field order is free in protobuf; scalars first, then entries, then the snapshot.
  for (const f of s.fields) w.field(f);
  if (m.type === 'app' || m.type === 'prop') {
    m.entries.forEach((entry, index) => {
      w.tag(7, LENGTH_DELIMITED);
      w.varint(s.entrySizes[index]!);
      w.field({ kind: 'number', field: 1, value: entry.term });
      w.field({ kind: 'number', field: 2, value: entry.index });
      w.field({ kind: 'number', field: 3, value: WIRE_ENTRY_TYPE[entry.type] });
      w.field({ kind: 'bytes', field: 4, value: entry.data });
    });
  }
  if (m.type === 'snap' && s.snapshot !== undefined) {
    const { index, term, confState } = m.snapshot.metadata;
    w.tag(14, LENGTH_DELIMITED);
    w.varint(s.snapshot.total);
    w.tag(1, LENGTH_DELIMITED);
    w.varint(s.snapshot.metadata);
    w.field({ kind: 'number', field: 1, value: index });
    w.field({ kind: 'number', field: 2, value: term });
    if (s.snapshot.conf > 0) {
      w.tag(3, LENGTH_DELIMITED);
      w.varint(s.snapshot.conf);
      for (const voter of confState.voters) w.field({ kind: 'id', field: 1, value: voter });
      for (const learner of confState.learners) w.field({ kind: 'id', field: 2, value: learner });
    }
    w.field({ kind: 'bytes', field: 2, value: m.snapshot.data });
  }
}

function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    bytes++;
  }
  return bytes;
}

function bigVarintBytes(value: bigint): number {
  return idVarint(value).byteLength;
}

/** Member ids are few and in every message: their varints are computed once (a bounded cache). */
const ID_VARINTS = new Map<bigint, Uint8Array>();
const ID_VARINTS_MAX = 256;

function idVarint(value: bigint): Uint8Array {
  const cached = ID_VARINTS.get(value);
  if (cached !== undefined) return cached;
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  const encoded = Uint8Array.from(bytes);
  if (ID_VARINTS.size >= ID_VARINTS_MAX) ID_VARINTS.clear();
  ID_VARINTS.set(value, encoded);
  return encoded;
}

function tagBytes(field: number): number {
  return varintBytes(field * 8);
}

// ---- decoding ----

class Reader {
  offset = 0;

  constructor(
    private readonly bytes: Uint8Array,
    readonly end = bytes.byteLength,
    start = 0,
  ) {
    this.offset = start;
  }

  get done(): boolean {
    return this.offset >= this.end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.offset >= this.end) throw bad('a varint runs past the end');
      const byte = this.bytes[this.offset++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw bad(`a number ${value} is not a safe integer`);
        return value;
      }
      scale *= 0x80;
    }
    throw bad('a varint is longer than 10 bytes');
  }

  bigVarint(): bigint {
    // Three groups of at most 28 bits each in plain numbers, joined once: far cheaper than a
    // BigInt operation per byte, and every message carries two member ids.
    let low = 0;
    let middle = 0;
    let high = 0;
    for (let index = 0; index < 10; index++) {
      if (this.offset >= this.end) throw bad('a varint runs past the end');
      const byte = this.bytes[this.offset++]!;
      const bits = byte & 0x7f;
      if (index < 4) low += bits * 2 ** (7 * index);
      else if (index < 8) middle += bits * 2 ** (7 * (index - 4));
      else high += bits * 2 ** (7 * (index - 8));
      if (byte < 0x80) {
        const value = (BigInt(high) << 56n) | (BigInt(middle) << 28n) | BigInt(low);
        if (value > UINT64_MAX) throw bad(`a member id ${value} is out of uint64 range`);
        return value;
      }
    }
    throw bad('a varint is longer than 10 bytes');
  }

  /** The extent of a length-delimited field, as [start, end). */
  span(): [number, number] {
    const length = this.varint();
    const start = this.offset;
    if (start + length > this.end) throw bad('a field runs past the end of its message');
    this.offset += length;
    return [start, start + length];
  }

  /** A copy: views would keep the whole received batch alive as long as any entry lives. */
  bytesField(): Uint8Array {
    const [start, end] = this.span();
    // Uint8Array's own slice copies; a Buffer's slice would be a view.
    return end === start ? EMPTY : Uint8Array.prototype.slice.call(this.bytes, start, end);
  }

  sub(): Reader {
    const [start, end] = this.span();
    return new Reader(this.bytes, end, start);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.varint();
        return;
      case 1:
        this.offset += 8;
        return;
      case LENGTH_DELIMITED:
        this.span();
        return;
      case 5:
        this.offset += 4;
        return;
      default:
        throw bad(`unknown wire type ${wireType}`);
    }
  }
}

/** The flat fields of one RaftMessage, proto3 defaults for the absent ones. */
interface Fields {
  type: number;
  from: bigint;
  to: bigint;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
  transfer: boolean;
  transferee: bigint;
  snapshot: Snapshot | undefined;
}

export function decodeBatch(bytes: Uint8Array): Batch {
  const reader = new Reader(bytes);
  const messages: Message[] = [];
  let seq = 0;
  let wantAck = false;
  while (!reader.done) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 1 && wireType === LENGTH_DELIMITED) messages.push(toMessage(readFields(reader.sub())));
    else if (field === 2 && wireType === VARINT) seq = reader.varint();
    else if (field === 3 && wireType === VARINT) wantAck = reader.varint() !== 0;
    else reader.skip(wireType);
  }
  return { messages, seq, wantAck };
}

function readFields(r: Reader): Fields {
  const f: Fields = { type: 0, from: 0n, to: 0n, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: EMPTY, transfer: false, transferee: 0n, snapshot: undefined };
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === VARINT) {
      switch (field) {
        case 1: f.type = r.varint(); continue;
        case 2: f.from = r.bigVarint(); continue;
        case 3: f.to = r.bigVarint(); continue;
        case 4: f.term = r.varint(); continue;
        case 5: f.logTerm = r.varint(); continue;
        case 6: f.index = r.varint(); continue;
        case 8: f.commit = r.varint(); continue;
        case 9: f.reject = r.varint() !== 0; continue;
        case 10: f.rejectHint = r.varint(); continue;
        case 12: f.transfer = r.varint() !== 0; continue;
        case 13: f.transferee = r.bigVarint(); continue;
      }
    } else if (wireType === LENGTH_DELIMITED) {
      switch (field) {
        case 7: f.entries.push(readEntry(r.sub())); continue;
        case 11: f.context = r.bytesField(); continue;
        case 14: f.snapshot = readSnapshot(r.sub()); continue;
      }
    }
    r.skip(wireType);
  }
  return f;
}

function readEntry(r: Reader): Entry {
  let term = 0;
  let index = 0;
  let code = 0;
  let data = EMPTY;
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 1 && wireType === VARINT) term = r.varint();
    else if (field === 2 && wireType === VARINT) index = r.varint();
    else if (field === 3 && wireType === VARINT) code = r.varint();
    else if (field === 4 && wireType === LENGTH_DELIMITED) data = r.bytesField();
    else r.skip(wireType);
  }
  const type: EntryType | undefined = code === WIRE_ENTRY_TYPE.normal ? 'normal' : code === WIRE_ENTRY_TYPE.confChange ? 'confChange' : undefined;
  if (type === undefined) throw bad(`unknown entry type ${code}`);
  return { term, index, type, data };
}

function readSnapshot(r: Reader): Snapshot {
  let metadata: Snapshot['metadata'] | undefined;
  let data = EMPTY;
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 1 && wireType === LENGTH_DELIMITED) metadata = readSnapshotMetadata(r.sub());
    else if (field === 2 && wireType === LENGTH_DELIMITED) data = r.bytesField();
    else r.skip(wireType);
  }
  if (metadata === undefined) throw bad('snapshot without metadata');
  return { metadata, data };
}

function readSnapshotMetadata(r: Reader): Snapshot['metadata'] {
  let index = 0;
  let term = 0;
  const confState: { voters: NodeId[]; learners: NodeId[] } = { voters: [], learners: [] };
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 1 && wireType === VARINT) index = r.varint();
    else if (field === 2 && wireType === VARINT) term = r.varint();
    else if (field === 3 && wireType === LENGTH_DELIMITED) readConfState(r.sub(), confState);
    else r.skip(wireType);
  }
  return { index, term, confState: confState as ConfState };
}

/** Repeated uint64 arrive packed (proto3's default) or one by one: both are read. */
function readConfState(r: Reader, into: { voters: NodeId[]; learners: NodeId[] }): void {
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    const list = field === 1 ? into.voters : field === 2 ? into.learners : undefined;
    if (list === undefined) {
      r.skip(wireType);
    } else if (wireType === VARINT) {
      list.push(r.bigVarint());
    } else if (wireType === LENGTH_DELIMITED) {
      const packed = r.sub();
      while (!packed.done) list.push(packed.bigVarint());
    } else {
      r.skip(wireType);
    }
  }
}

/** Object literals per type (no spread of a shared base: that is V8's slow path, per message). */
function toMessage(f: Fields): Message {
  const type = MESSAGE_TYPE_BY_NUMBER.get(f.type);
  if (type === undefined) throw bad(`unknown message type ${f.type}`);
  const { from, to, term } = f;
  switch (type) {
    case 'prop':
      return { type, from, to, term, entries: f.entries };
    case 'app':
      return { type, from, to, term, logTerm: f.logTerm, index: f.index, entries: f.entries, commit: f.commit };
    case 'appResp':
      return { type, from, to, term, index: f.index, reject: f.reject, rejectHint: f.rejectHint, logTerm: f.logTerm };
    case 'vote':
    case 'preVote':
      return { type, from, to, term, logTerm: f.logTerm, index: f.index, transfer: f.transfer };
    case 'voteResp':
    case 'preVoteResp':
      return { type, from, to, term, reject: f.reject };
    case 'heartbeat':
      return { type, from, to, term, commit: f.commit, context: f.context };
    case 'heartbeatResp':
    case 'readIndex':
      return { type, from, to, term, context: f.context };
    case 'snap':
      if (f.snapshot === undefined) throw bad('snap message without a snapshot');
      return { type, from, to, term, snapshot: f.snapshot };
    case 'timeoutNow':
      return { type, from, to, term };
    case 'transferLeader':
      return { type, from, to, term, transferee: f.transferee };
    case 'readIndexResp':
      return { type, from, to, term, index: f.index, context: f.context };
    default:
      return assertNever(type);
  }
}

function bad(reason: string): GavelError {
  return new GavelError('InvalidArgument', `gavel: bad raft message: ${reason}`);
}
