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
 * Where fields go: a Writer appends bytes, a Sizer only counts them. The same write functions
 * drive both, so a nested message's length is known before its bytes are written (no shifting).
 */
interface Sink {
  number(field: number, value: number): void;
  id(field: number, value: NodeId): void;
  bool(field: number, value: boolean): void;
  bytesField(field: number, value: Uint8Array): void;
  /** A nested message; an empty one is left out unless always. */
  nested(field: number, body: (sink: Sink) => void, always: boolean): void;
}

class Sizer implements Sink {
  bytes = 0;

  number(field: number, value: number): void {
    if (value !== 0) this.bytes += tagBytes(field) + varintBytes(value);
  }

  id(field: number, value: NodeId): void {
    if (value !== 0n) this.bytes += tagBytes(field) + bigVarintBytes(value);
  }

  bool(field: number, value: boolean): void {
    if (value) this.bytes += tagBytes(field) + 1;
  }

  bytesField(field: number, value: Uint8Array): void {
    if (value.byteLength > 0) this.bytes += tagBytes(field) + varintBytes(value.byteLength) + value.byteLength;
  }

  nested(field: number, body: (sink: Sink) => void, always: boolean): void {
    const size = sizeOf(body);
    if (size > 0 || always) this.bytes += tagBytes(field) + varintBytes(size) + size;
  }
}

function sizeOf(body: (sink: Sink) => void): number {
  const sizer = new Sizer();
  body(sizer);
  return sizer.bytes;
}

class Writer implements Sink {
  private readonly bytes: Buffer;
  private length = 0;

  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size);
  }

  finish(): Uint8Array {
    assert(this.length === this.bytes.byteLength, `wrote ${this.length} of ${this.bytes.byteLength} sized bytes`);
    return this.bytes;
  }

  private varint(value: number): void {
    while (value >= 0x80) {
      this.bytes[this.length++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.bytes[this.length++] = value;
  }

  private bigVarint(value: bigint): void {
    while (value >= 0x80n) {
      this.bytes[this.length++] = Number(value & 0x7fn) | 0x80;
      value >>= 7n;
    }
    this.bytes[this.length++] = Number(value);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  number(field: number, value: number): void {
    if (value === 0) return;
    assert(Number.isSafeInteger(value) && value >= 0, `raft number ${value} is not a non-negative safe integer`);
    this.tag(field, VARINT);
    this.varint(value);
  }

  id(field: number, value: NodeId): void {
    if (value === 0n) return;
    assert(value > 0n && value <= UINT64_MAX, `member id ${value} out of uint64 range`);
    this.tag(field, VARINT);
    this.bigVarint(value);
  }

  bool(field: number, value: boolean): void {
    if (!value) return;
    this.tag(field, VARINT);
    this.varint(1);
  }

  bytesField(field: number, value: Uint8Array): void {
    if (value.byteLength === 0) return;
    this.tag(field, LENGTH_DELIMITED);
    this.varint(value.byteLength);
    this.bytes.set(value, this.length);
    this.length += value.byteLength;
  }

  nested(field: number, body: (sink: Sink) => void, always: boolean): void {
    const size = sizeOf(body);
    if (size === 0 && !always) return;
    this.tag(field, LENGTH_DELIMITED);
    this.varint(size);
    const start = this.length;
    body(this);
    assert(this.length - start === size, 'a nested message wrote other than its size');
  }
}

export function encodeBatch(messages: readonly Message[], seq: number, wantAck: boolean): Uint8Array {
  // Every message is sent, default fields or not: always=true keeps an all-default one.
  const body = (sink: Sink): void => {
    for (const m of messages) sink.nested(1, (inner) => writeMessage(inner, m), true);
    sink.number(2, seq);
    sink.bool(3, wantAck);
  };
  const writer = new Writer(sizeOf(body));
  body(writer);
  return writer.finish();
}

function writeMessage(w: Sink, m: Message): void {
  w.number(1, WIRE_MESSAGE_TYPE[m.type]);
  w.id(2, m.from);
  w.id(3, m.to);
  w.number(4, m.term);
  switch (m.type) {
    case 'prop':
      writeEntries(w, m.entries);
      return;
    case 'app':
      w.number(5, m.logTerm);
      w.number(6, m.index);
      writeEntries(w, m.entries);
      w.number(8, m.commit);
      return;
    case 'appResp':
      w.number(5, m.logTerm);
      w.number(6, m.index);
      w.bool(9, m.reject);
      w.number(10, m.rejectHint);
      return;
    case 'vote':
    case 'preVote':
      w.number(5, m.logTerm);
      w.number(6, m.index);
      w.bool(12, m.transfer);
      return;
    case 'voteResp':
    case 'preVoteResp':
      w.bool(9, m.reject);
      return;
    case 'heartbeat':
      w.number(8, m.commit);
      w.bytesField(11, m.context);
      return;
    case 'heartbeatResp':
    case 'readIndex':
      w.bytesField(11, m.context);
      return;
    case 'snap':
      w.nested(14, (inner) => writeSnapshot(inner, m.snapshot), true);
      return;
    case 'timeoutNow':
      return;
    case 'transferLeader':
      w.id(13, m.transferee);
      return;
    case 'readIndexResp':
      w.number(6, m.index);
      w.bytesField(11, m.context);
      return;
    default:
      assertNever(m);
  }
}

function writeEntries(w: Sink, entries: readonly Entry[]): void {
  for (const entry of entries) w.nested(7, (inner) => writeEntry(inner, entry), true);
}

function writeEntry(w: Sink, entry: Entry): void {
  w.number(1, entry.term);
  w.number(2, entry.index);
  w.number(3, WIRE_ENTRY_TYPE[entry.type]);
  w.bytesField(4, entry.data);
}

function writeSnapshot(w: Sink, snapshot: Snapshot): void {
  const { index, term, confState } = snapshot.metadata;
  w.nested(1, (metadata) => {
    metadata.number(1, index);
    metadata.number(2, term);
    metadata.nested(3, (conf) => {
      for (const voter of confState.voters) conf.id(1, voter);
      for (const learner of confState.learners) conf.id(2, learner);
    }, false);
  }, true);
  w.bytesField(2, snapshot.data);
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
  let bytes = 1;
  while (value >= 0x80n) {
    value >>= 7n;
    bytes++;
  }
  return bytes;
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
