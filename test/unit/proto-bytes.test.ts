/**
 * Goal: a Raft payload owns its bytes. protobufjs hands out small buffers from Node's shared
 * 8 KiB pool; an entry kept in the in-memory Raft log as a view of such a slab kept the whole
 * slab alive (the soak benchmark's members grew by hundreds of MB before their first snapshot).
 */
import { describe, expect, it } from 'vitest';
import { encodeRequest } from '../../server/apply/request.js';

describe('encoded Raft payloads', () => {
  it('are backed by an ArrayBuffer of exactly their size, however small', () => {
    for (let i = 0; i < 200; i++) {
      const data = encodeRequest(BigInt(i), { put: { key: Buffer.from(`lock/${i}`), value: Buffer.alloc(i % 50), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } } as never);
      expect(data.buffer.byteLength).toBe(data.byteLength);
      expect(data.byteOffset).toBe(0);
    }
  });
});
