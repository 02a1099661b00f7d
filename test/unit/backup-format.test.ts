/**
 * The pure parts of backups: the aligned snapshot format etcdctl accepts, etcd's framing of the
 * Snapshot stream, the restore flags, and the new cluster's identity and log start.
 */
import { describe, expect, it } from 'vitest';
import { BACKUP_ALIGN_BYTES, DIGEST_BYTES, SnapshotDecoder, SnapshotEncoder, encodedRecordBytes, encodedSnapshotBytes } from '../../server/apply/snapshot-format.js';
import { etcdFrames, type SnapshotFrame } from '../../server/api/snapshot.js';
import { parseRestoreArgs, parseStatusArgs } from '../../server/restore/options.js';
import { planRestore, restoredRecord } from '../../server/restore/plan.js';
import { formatStatus, humanBytes } from '../../server/restore/cli.js';
import { SummaryBuilder } from '../../server/restore/snapshot-file.js';
import { clusterIdFor, memberIdFor } from '../../server/cluster/membership.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function encode(aligned: boolean, count: number, valueBytes = 10): { bytes: Buffer; recordBytes: number } {
  const encoder = new SnapshotEncoder({ aligned });
  const parts: Uint8Array[] = [];
  let recordBytes = 0;
  for (let i = 0; i < count; i++) {
    const key = text(`key-${i}`);
    const value = new Uint8Array(valueBytes).fill(i % 251);
    encoder.record('kv', key, value);
    recordBytes += encodedRecordBytes(key, value);
    parts.push(encoder.take());
  }
  parts.push(encoder.finish());
  return { bytes: Buffer.concat(parts), recordBytes };
}

function decodeAll(bytes: Buffer): void {
  const decoder = new SnapshotDecoder();
  decoder.push(bytes);
  decoder.end();
}

async function collect(frames: AsyncIterable<SnapshotFrame>): Promise<SnapshotFrame[]> {
  const out: SnapshotFrame[] = [];
  for await (const frame of frames) out.push(frame);
  return out;
}

async function* chunksOf(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}

describe('aligned snapshot format (version 2, backups)', () => {
  it('is a multiple of 512 bytes plus the digest, measured exactly, and decodes back', () => {
    for (const count of [0, 1, 7, 100]) {
      const { bytes, recordBytes } = encode(true, count);
      expect(bytes.length % BACKUP_ALIGN_BYTES).toBe(DIGEST_BYTES);
      expect(bytes.length).toBe(encodedSnapshotBytes(recordBytes, true) + DIGEST_BYTES);
      const decoder = new SnapshotDecoder();
      expect(decoder.push(bytes)).toHaveLength(count);
      decoder.end();
    }
  });

  it('version 1 (Raft snapshots) is unpadded and still decodes', () => {
    const { bytes, recordBytes } = encode(false, 7);
    expect(bytes.length).toBe(encodedSnapshotBytes(recordBytes, false) + DIGEST_BYTES);
    const decoder = new SnapshotDecoder();
    expect(decoder.push(bytes)).toHaveLength(7);
    decoder.end();
  });

  it('refuses non-zero padding, a flipped byte and a cut, unless asked to skip only the digest', () => {
    const { bytes } = encode(true, 3);
    const padded = Buffer.from(bytes);
    padded[padded.length - DIGEST_BYTES - 1] = 1;
    expect(() => decodeAll(padded)).toThrow(/padding is not zeros/);
    const flipped = Buffer.from(bytes);
    flipped[20] = flipped[20]! ^ 0xff;
    // A length field: the decoder waits for bytes that never come.
    expect(() => decodeAll(flipped)).toThrow(/truncated/);
    const valueFlipped = Buffer.from(bytes);
    const at = valueFlipped.indexOf('key-1') + 10;
    valueFlipped[at] = valueFlipped[at]! ^ 0x01;
    expect(() => decodeAll(valueFlipped)).toThrow(/corrupted/);
    const skipping = new SnapshotDecoder({ checkDigest: false });
    skipping.push(valueFlipped);
    skipping.end();
    const cut = new SnapshotDecoder();
    cut.push(bytes.subarray(0, bytes.length - 1));
    expect(() => cut.end()).toThrow(/truncated/);
  });
});

describe("etcd's Snapshot framing", () => {
  it('32 KiB blobs counting remaining_bytes down to 0, then the digest alone', async () => {
    const { bytes, recordBytes } = encode(true, 200, 1000);
    const before = encodedSnapshotBytes(recordBytes, true);
    const frames = await collect(etcdFrames(chunksOf(bytes, 10_000), before, 32 * 1024));
    const last = frames.at(-1)!;
    expect(last).toEqual({ remaining_bytes: '0', blob: bytes.subarray(bytes.length - DIGEST_BYTES) });
    const data = frames.slice(0, -1);
    expect(data.slice(0, -1).every((f) => f.blob.length === 32 * 1024)).toBe(true);
    let remaining = before;
    for (const frame of data) {
      remaining -= frame.blob.length;
      expect(frame.remaining_bytes).toBe(String(remaining));
    }
    expect(remaining).toBe(0);
    expect(Buffer.concat(frames.map((f) => f.blob)).equals(bytes)).toBe(true);
  });

  it('fails when the stream is not exactly the announced length', async () => {
    const { bytes, recordBytes } = encode(true, 3);
    const before = encodedSnapshotBytes(recordBytes, true);
    await expect(collect(etcdFrames(chunksOf(bytes, 100), before + 1, 64))).rejects.toThrow(/announced/);
    await expect(collect(etcdFrames(chunksOf(bytes.subarray(0, bytes.length - 1), 100), before, 64))).rejects.toThrow(/announced/);
  });
});

describe('gavel snapshot restore: flags and plan', () => {
  const flags = ['backup.db', '--name', 'b', '--initial-cluster', 'a=http://h1:2380,b=http://h2:2380,c=http://h3:2380', '--initial-cluster-token', 'tok', '--initial-advertise-peer-urls', 'http://h2:2380', '--data-dir=/tmp/b'];

  it("takes etcd's restore flags and nothing else", () => {
    const options = parseRestoreArgs([...flags, '--skip-hash-check']);
    expect(options).toMatchObject({ file: 'backup.db', skipHashCheck: true, config: { name: 'b', dataDir: '/tmp/b', initialClusterToken: 'tok' } });
    expect(parseRestoreArgs(flags).skipHashCheck).toBe(false);
    expect(() => parseRestoreArgs([...flags, '--listen-client-urls', 'http://x:1'])).toThrow(/unknown flag/);
    expect(() => parseRestoreArgs(flags.slice(1))).toThrow(/exactly one snapshot file/);
    expect(() => parseRestoreArgs([...flags, '--wal-dir', 'x'])).toThrow(/--wal-dir/);
    expect(parseStatusArgs(['f', '-w', 'json'])).toEqual({ file: 'f', format: 'json' });
  });

  it('the new membership is --initial-cluster, ids derived as a bootstrap derives them, the log starting at the backup index', () => {
    const plan = planRestore(parseRestoreArgs(flags).config, 4321);
    const ids = ['http://h1:2380', 'http://h2:2380', 'http://h3:2380'].map((url) => memberIdFor([url], 'tok'));
    expect(plan.members.map((m) => m.name)).toEqual(['a', 'b', 'c']);
    expect(plan.identity).toEqual({ memberId: ids[1], clusterId: clusterIdFor(ids) });
    expect(plan.metadata).toMatchObject({ index: 4321, term: 1, confState: { learners: [] } });
    expect([...plan.metadata.confState.voters].sort()).toEqual([...ids].sort());
    expect(plan.hardState).toEqual({ term: 1, vote: 0n, commit: 4321 });
    expect(() => planRestore(parseRestoreArgs([...flags.slice(0, 2), 'zz', ...flags.slice(3)]).config, 1)).toThrow(/no entry/);
  });

  it('keeps state records, drops the old membership, applied index and alarms', () => {
    expect(restoredRecord({ space: 'kv', key: text('k'), value: text('v') })).toBe(true);
    expect(restoredRecord({ space: 'auth', key: text('k'), value: text('v') })).toBe(true);
    expect(restoredRecord({ space: 'meta', key: text('applied-index'), value: text('9') })).toBe(false);
    expect(restoredRecord({ space: 'alarm', key: text('k'), value: text('') })).toBe(false);
  });
});

describe('gavel snapshot status', () => {
  it("prints etcdctl's columns from what the file holds", () => {
    const builder = new SummaryBuilder();
    const revisionKey = (main: number): Uint8Array => {
      const key = new Uint8Array(16);
      new DataView(key.buffer).setBigUint64(0, BigInt(main));
      return key;
    };
    builder.add({ space: 'kv', key: revisionKey(2), value: text('x') });
    builder.add({ space: 'kv', key: revisionKey(7), value: text('x') });
    builder.add({ space: 'meta', key: text('applied-index'), value: text('12') });
    expect(() => builder.add({ space: 'log', key: text('1'), value: text('') })).toThrow(/never hold/);
    const summary = builder.finish(2080, new Uint8Array(32).fill(0xab));
    expect(summary).toMatchObject({ revision: 7, appliedIndex: 12, records: 4, kvRecords: 2 });
    expect(formatStatus(summary, 'simple')).toBe('abababab, 7, 4, 2.1 kB');
    expect(humanBytes(544)).toBe('544 B');
    expect(humanBytes(2_100_000)).toBe('2.1 MB');
  });
});
