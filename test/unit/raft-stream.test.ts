// Goal: the Raft stream's framing cuts any byte stream into the frames that were written, however
// the bytes are chunked, refuses a frame over its limit, and its hello and answers round-trip.
import { describe, expect, it } from 'vitest';
import {
  AnswerKind, decodeAnswer, decodeHello, encodeAnswer, encodeHello, frame, FrameReader, StreamProtocolError,
} from '../../server/transport/raft-stream.js';

function chunksOf(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

describe('Raft stream framing', () => {
  const payloads = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(70_000, 7), Buffer.from('hello'), Buffer.alloc(3, 1)];
  const stream = Buffer.concat(payloads.map((p) => frame(p)));

  for (const sizes of [[stream.length], [1], [3], [5, 1, 4096], [65_536, 2], [4]]) {
    it(`gives back every frame in order when the bytes come in chunks of ${sizes.join(', ')}`, () => {
      const reader = new FrameReader(1 << 20);
      const out: Buffer[] = [];
      for (const chunk of chunksOf(stream, sizes)) for (const p of reader.push(chunk)) out.push(Buffer.from(p));
      expect(out).toEqual(payloads);
      expect(reader.bufferedBytes).toBe(0);
    });
  }

  it('refuses a frame longer than its limit as soon as the length is read', () => {
    const reader = new FrameReader(1024);
    const header = frame(Buffer.alloc(1025)).subarray(0, 4);
    expect(() => reader.push(header)).toThrow(StreamProtocolError);
  });

  it('round-trips the hello, an ack with a 64-bit sequence and a refusal', () => {
    const hello = { clusterId: 0xffff_ffff_ffff_fffen, from: 1n, to: 0n };
    expect(decodeHello(encodeHello(hello))).toEqual(hello);
    expect(() => decodeHello(Buffer.alloc(23))).toThrow(StreamProtocolError);
    expect(decodeAnswer(encodeAnswer({ kind: AnswerKind.Ack, seq: 2n ** 63n }))).toEqual({ kind: AnswerKind.Ack, seq: 2n ** 63n });
    expect(decodeAnswer(encodeAnswer({ kind: AnswerKind.Refusal, reason: 'gavel: cluster id mismatch' }))).toEqual({ kind: AnswerKind.Refusal, reason: 'gavel: cluster id mismatch' });
    expect(() => decodeAnswer(Buffer.from([9]))).toThrow(StreamProtocolError);
  });
});
