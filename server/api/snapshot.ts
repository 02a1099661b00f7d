/**
 * Maintenance.Snapshot: streams a backup of this member's state (node/backup.ts) the way etcd
 * streams its database, so `etcdctl snapshot save` works unchanged:
 *
 *   - blobs of 32 KiB (etcd's send buffer), each with remaining_bytes = the bytes still to come
 *     after it, not counting the trailer;
 *   - then one last message whose blob is the 32-byte SHA-256 of everything before it, with
 *     remaining_bytes 0.
 *
 * gavel's snapshot format already ends with that digest (apply/snapshot-format.ts), so the file
 * etcdctl writes is exactly a gavel snapshot file, and `gavel snapshot restore` checks it.
 *
 * A slow client must not make the member hold the whole file: the stream is read from level only
 * as fast as HTTP/2 takes it (StreamOutput's bound, then wait for room). Under auth, root only
 * (etcd's authMaintenanceServer).
 */
import type * as grpc from '@grpc/grpc-js';
import { assert, GavelError } from '../errors.js';
import { DIGEST_BYTES } from '../apply/snapshot-format.js';
import type { Backup } from '../node/backup.js';
import { callSignal, type ApiContext } from './context.js';
import { requireAdmin } from './caller.js';
import { failStream } from './status.js';
import { GRPC_FRAME_BYTES, StreamOutput } from './stream-output.js';

/** etcd's snapshotSendBufferSize: the size of every blob but the last data blob and the digest. */
export const SNAPSHOT_BLOB_BYTES = 32 * 1024;
/** Bytes read from level per step: a few blobs, so the encoder's chunks stay small. */
const READ_CHUNK_BYTES = 4 * SNAPSHOT_BLOB_BYTES;

export interface SnapshotFrame {
  readonly remaining_bytes: string;
  readonly blob: Buffer;
}

export function snapshotHandler(ctx: ApiContext): grpc.handleServerStreamingCall<object, SnapshotFrame> {
  return (call) => {
    const signal = callSignal(call);
    void (async () => {
      let backup: Backup | undefined;
      try {
        await requireAdmin(ctx, call, signal).catch((error: unknown) => {
          throw asEtcdSnapshotRefusal(error);
        });
        if (ctx.openBackup === undefined) throw new GavelError('Unimplemented', 'gavel: this member keeps no snapshot to stream');
        backup = await ctx.openBackup(READ_CHUNK_BYTES, signal);
        ctx.logger.info('sending a snapshot', { appliedIndex: backup.appliedIndex, bytes: backup.bytesBeforeDigest + DIGEST_BYTES });
        const output = new StreamOutput<SnapshotFrame>(call, { kind: 'maintenance_snapshot', tally: ctx.streams, reader: null });
        const sent = await sendFrames(output, etcdFrames(backup.chunks, backup.bytesBeforeDigest, SNAPSHOT_BLOB_BYTES));
        if (!sent) {
          ctx.logger.info('snapshot stream cancelled by the client', { appliedIndex: backup.appliedIndex });
          return;
        }
        call.end();
        ctx.logger.info('sent a snapshot', { appliedIndex: backup.appliedIndex });
      } catch (error) {
        if (!signal.aborted) failStream(call, error);
      } finally {
        // Ends the level reads (the generator's iterators close) and releases the level snapshot.
        await backup?.chunks.return(undefined);
        await backup?.close();
      }
    })();
  };
}

/**
 * etcd 3.4's Snapshot passes the auth store's own error to gRPC unconverted, so etcdctl prints
 * "rpc error: code = Unknown desc = auth: permission denied" (and "auth: user name is empty"),
 * not the etcdserver: texts of the unary calls (observed with etcd 3.4.23 and its etcdctl).
 */
function asEtcdSnapshotRefusal(error: unknown): unknown {
  if (!(error instanceof GavelError)) return error;
  if (error.code === 'PermissionDenied') return new GavelError('Unknown', 'auth: permission denied');
  if (error.code === 'UserEmpty') return new GavelError('Unknown', 'auth: user name is empty');
  return error;
}

/** Writes each frame, waiting for room whenever the client is behind; false if the stream closed first. */
async function sendFrames(output: StreamOutput<SnapshotFrame>, frames: AsyncIterable<SnapshotFrame>): Promise<boolean> {
  for await (const frame of frames) {
    if (output.isClosed) return false;
    if (!output.write(frame, GRPC_FRAME_BYTES + frame.blob.byteLength + 16)) await output.room();
  }
  return !output.isClosed;
}

/**
 * Re-cuts the snapshot byte stream into etcd's frames: blobBytes-sized blobs of the first
 * bytesBeforeDigest bytes, then the digest alone. Fails if the stream is not exactly
 * bytesBeforeDigest + 32 bytes long (the measure and the stream disagree: nothing is sent as if
 * complete).
 */
export async function* etcdFrames(chunks: AsyncIterable<Uint8Array>, bytesBeforeDigest: number, blobBytes: number): AsyncGenerator<SnapshotFrame> {
  assert(blobBytes > 0 && bytesBeforeDigest >= 0, 'snapshot frame sizes');
  let pending: Buffer = Buffer.alloc(0);
  let sent = 0;
  for await (const chunk of chunks) {
    pending = pending.byteLength === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([pending, chunk]);
    for (;;) {
      const dataLeft = bytesBeforeDigest - sent;
      const size = Math.min(blobBytes, dataLeft);
      // Past bytesBeforeDigest only the digest is left: it travels alone, after the loop.
      if (size === 0 || pending.byteLength < size) break;
      const blob = Buffer.from(pending.subarray(0, size));
      pending = pending.subarray(size);
      sent += size;
      yield { remaining_bytes: String(bytesBeforeDigest - sent), blob };
    }
  }
  if (sent !== bytesBeforeDigest || pending.byteLength !== DIGEST_BYTES) {
    throw new Error(`snapshot stream of ${sent + pending.byteLength} bytes, announced ${bytesBeforeDigest} + ${DIGEST_BYTES}`);
  }
  yield { remaining_bytes: '0', blob: Buffer.from(pending) };
}
