// Goal: the direct peer codec (transport/wire.ts) writes exactly what raft.proto's MessageBatch
// says — protobufjs reads its bytes, and it reads protobufjs's — for every message type, ids up to
// 2^64-1 and large byte fields; and it refuses malformed bytes from a peer with InvalidArgument.
import { describe, expect, it } from 'vitest';
import { isGavelError } from '../../server/errors.js';
import { messageCodec } from '../../server/proto.js';
import { MESSAGE_TYPES, type Message, type MessageType } from '../../server/raft/types.js';
import { bytesOf, MAX_ID, normalize, sampleMessages } from '../helpers/raft-messages.js';
import { decodeMessage, encodeMessage, type WireRaftMessage } from '../../server/transport/codec.js';
import { decodeBatch, encodeBatch } from '../../server/transport/wire.js';

interface WireBatch {
  messages: WireRaftMessage[];
  seq: string;
  want_ack: boolean;
}

const protobuf = messageCodec<WireBatch>('gavel.raft.v1.MessageBatch');
const samples = (from: bigint, to: bigint): Record<MessageType, Message> => sampleMessages(from, to, 300_000);

function refusal(bytes: Uint8Array): unknown {
  try {
    return decodeBatch(bytes);
  } catch (error) {
    return error;
  }
}

describe('peer batch codec', () => {
  for (const [from, to] of [[1n, 2n], [MAX_ID, MAX_ID - 1n], [0n, 0x8000_0000_0000_0000n]] as const) {
    it(`agrees with protobufjs in both directions for every message type (${from} -> ${to})`, () => {
      const messages = Object.values(samples(from, to));
      expect(messages.map((m) => m.type).sort()).toEqual([...MESSAGE_TYPES].sort());
      const ours = encodeBatch(messages, 123_456_789_012, true);
      const back = decodeBatch(ours);
      expect(back.seq).toBe(123_456_789_012);
      expect(back.wantAck).toBe(true);
      expect(normalize(back.messages)).toEqual(normalize(messages));
      // protobufjs reads our bytes...
      const read = protobuf.decode(Buffer.from(ours));
      expect(read.seq).toBe('123456789012');
      expect(normalize(read.messages.map(decodeMessage))).toEqual(normalize(messages));
      // ...and we read its bytes.
      const theirs = protobuf.encode({ messages: messages.map(encodeMessage), seq: '123456789012', want_ack: true });
      expect(normalize(decodeBatch(theirs).messages)).toEqual(normalize(messages));
    });
  }

  it('keeps messages with every field at its default, and an empty batch', () => {
    const zero: Message[] = [
      { type: 'app', from: 1n, to: 2n, term: 0, logTerm: 0, index: 0, entries: [], commit: 0 },
      { type: 'snap', from: 1n, to: 2n, term: 0, snapshot: { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) } },
      { type: 'heartbeat', from: 1n, to: 2n, term: 0, commit: 0, context: new Uint8Array(0) },
    ];
    expect(normalize(decodeBatch(encodeBatch(zero, 0, false)).messages)).toEqual(normalize(zero));
    expect(decodeBatch(encodeBatch([], 5, false))).toEqual({ messages: [], seq: 5, wantAck: false });
  });

  it('copies decoded bytes out of the received frame', () => {
    const frame = encodeBatch([{ type: 'heartbeat', from: 1n, to: 2n, term: 1, commit: 1, context: bytesOf(4) }], 1, false);
    const back = decodeBatch(frame);
    frame.fill(0);
    const first = back.messages[0]!;
    expect(first.type === 'heartbeat' && Array.from(first.context)).toEqual(Array.from(bytesOf(4)));
  });

  it('refuses truncated bytes, unknown types, numbers beyond 2^53 and a snap without its snapshot', () => {
    const good = encodeBatch([samples(1n, 2n).app], 1, false);
    for (let cut = 1; cut < 40; cut += 3) expect(isGavelError(refusal(good.subarray(0, good.length - cut)), 'InvalidArgument'), `cut ${cut}`).toBe(true);
    const wire = (patch: Partial<WireRaftMessage>): Uint8Array => protobuf.encode({ messages: [{ ...encodeMessage({ type: 'timeoutNow', from: 1n, to: 2n, term: 1 }), ...patch }], seq: '1', want_ack: false });
    expect(isGavelError(refusal(wire({ type: 0 })), 'InvalidArgument')).toBe(true);
    expect(isGavelError(refusal(wire({ type: 99 })), 'InvalidArgument')).toBe(true);
    expect(isGavelError(refusal(wire({ term: '9007199254740992' })), 'InvalidArgument')).toBe(true);
    expect(isGavelError(refusal(wire({ type: 10 })), 'InvalidArgument')).toBe(true);
    expect(isGavelError(refusal(wire({ type: 2, entries: [{ term: '1', index: '1', type: 7, data: new Uint8Array(0) }] })), 'InvalidArgument')).toBe(true);
  });
});
