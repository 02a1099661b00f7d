// Goal: every Raft message type survives Message → wire → protobuf bytes → wire → Message exactly,
// including uint64 member ids up to 2^64-1 and empty or large byte fields, and bad input is refused.
import { describe, expect, it } from 'vitest';
import { isGavelError } from '../../server/errors.js';
import { messageCodec, protobufRoot } from '../../server/proto.js';
import { MESSAGE_TYPES, type Message, type MessageType } from '../../server/raft/types.js';
import { bytesOf, MAX_ID, normalize, sampleMessages } from '../helpers/raft-messages.js';
import { WIRE_ENTRY_TYPE, WIRE_MESSAGE_TYPE, decodeMessage, encodeMessage, messageBytes, type WireRaftMessage } from '../../server/transport/codec.js';

const codec = messageCodec<WireRaftMessage>('gavel.raft.v1.RaftMessage');
const samples = (from: bigint, to: bigint): Record<MessageType, Message> => sampleMessages(from, to);

function roundTrip(m: Message): Message {
  return decodeMessage(codec.decode(codec.encode(encodeMessage(m))));
}

describe('raft message codec', () => {
  it('covers every message type in types.ts', () => {
    expect(Object.keys(samples(1n, 2n)).sort()).toEqual([...MESSAGE_TYPES].sort());
  });

  for (const [from, to] of [
    [1n, 2n],
    [MAX_ID, MAX_ID - 1n],
    [0n, 0x8000_0000_0000_0000n],
  ] as const) {
    it(`round-trips every message type between ${from} and ${to}`, () => {
      for (const m of Object.values(samples(from, to))) {
        const back = roundTrip(m);
        expect(normalize(back), m.type).toEqual(normalize(m));
        expect(typeof back.from).toBe('bigint');
      }
    });
  }

  it('round-trips messages with every field at its default (zero / empty)', () => {
    const zero: Message[] = [
      { type: 'app', from: 1n, to: 2n, term: 0, logTerm: 0, index: 0, entries: [], commit: 0 },
      { type: 'snap', from: 1n, to: 2n, term: 0, snapshot: { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) } },
      { type: 'heartbeat', from: 1n, to: 2n, term: 0, commit: 0, context: new Uint8Array(0) },
    ];
    for (const m of zero) expect(normalize(roundTrip(m))).toEqual(normalize(m));
  });

  it('copies decoded bytes out of the received buffer', () => {
    const m: Message = { type: 'heartbeat', from: 1n, to: 2n, term: 1, commit: 1, context: bytesOf(4) };
    const frame = codec.encode(encodeMessage(m));
    const back = decodeMessage(codec.decode(frame));
    frame.fill(0);
    expect(back.type === 'heartbeat' && Array.from(back.context)).toEqual(Array.from(bytesOf(4)));
  });

  it('numbers its enums as raft.proto does', () => {
    const messageType = protobufRoot().lookupEnum('gavel.raft.v1.MessageType');
    const protoNames = Object.entries(messageType.values).filter(([, n]) => n !== 0);
    expect(protoNames).toHaveLength(MESSAGE_TYPES.length);
    for (const type of MESSAGE_TYPES) {
      const snake = type.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
      expect(messageType.values[snake], type).toBe(WIRE_MESSAGE_TYPE[type]);
    }
    const entryType = protobufRoot().lookupEnum('gavel.raft.v1.EntryType');
    expect(entryType.values).toEqual({ NORMAL: WIRE_ENTRY_TYPE.normal, CONF_CHANGE: WIRE_ENTRY_TYPE.confChange });
  });

  it('refuses unknown types and numbers beyond 2^53 with InvalidArgument', () => {
    const wire = encodeMessage({ type: 'timeoutNow', from: 1n, to: 2n, term: 1 });
    const decodeWith = (patch: Partial<WireRaftMessage>): unknown => {
      try {
        return decodeMessage(codec.decode(codec.encode({ ...wire, ...patch })));
      } catch (error) {
        return error;
      }
    };
    expect(isGavelError(decodeWith({ type: 0 }), 'InvalidArgument')).toBe(true);
    expect(isGavelError(decodeWith({ type: 99 }), 'InvalidArgument')).toBe(true);
    expect(isGavelError(decodeWith({ term: '9007199254740992' }), 'InvalidArgument')).toBe(true);
    expect(isGavelError(decodeWith({ type: WIRE_MESSAGE_TYPE.snap }), 'InvalidArgument')).toBe(true); // snap without snapshot
    expect(isGavelError(decodeWith({ type: WIRE_MESSAGE_TYPE.app, entries: [{ term: '1', index: '1', type: 7, data: new Uint8Array(0) }] }), 'InvalidArgument')).toBe(true);
  });

  it('asserts on ids and numbers that cannot be encoded (programmer errors)', () => {
    expect(() => encodeMessage({ type: 'timeoutNow', from: 1n << 64n, to: 2n, term: 1 })).toThrow(/uint64/);
    expect(() => encodeMessage({ type: 'timeoutNow', from: 1n, to: 2n, term: -1 })).toThrow(/safe integer/);
    expect(() => encodeMessage({ type: 'timeoutNow', from: 1n, to: 2n, term: 1.5 })).toThrow(/safe integer/);
  });

  it('estimates an upper bound of the encoded size', () => {
    for (const m of Object.values(samples(MAX_ID, MAX_ID))) {
      expect(messageBytes(m), m.type).toBeGreaterThanOrEqual(codec.encode(encodeMessage(m)).length);
    }
  });
});
