/**
 * The server half of gavel.raft.v1.Peer: authenticates each call by its metadata, delivers
 * stream batches in order, reassembles snapshots and plumbs the lease calls to the handlers.
 */
import * as grpc from '@grpc/grpc-js';
import type { Socket } from 'node:net';
import { toServiceError, type ServiceErrorLike } from '../api/status.js';
import { GavelError } from '../errors.js';
import { encodedSize, StreamOutput, type StreamTally } from '../api/stream-output.js';
import type { Logger } from '../log.js';
import type { Message, SnapMessage } from '../raft/types.js';
import { decodeBatch, type Batch } from './wire.js';
import {
  METADATA_CLUSTER_ID,
  METADATA_FROM,
  METADATA_TO,
  type Framed,
  type WireLeaseRenewRequest,
  type WireLeaseRenewResponse,
  type WireLeaseTtlRequest,
  type WireLeaseTtlResponse,
  type WireSnapshotChunk,
  type WireStreamAck,
} from './service.js';
import { AnswerKind, decodeHello, encodeAnswer, FrameReader, frame, StreamProtocolError } from './raft-stream.js';
import { ChunkSequence, type IncomingSnapshot, type SnapshotStreams } from './snapshot.js';
import type { TransportHandlers, TransportMetrics } from './types.js';

export interface ReceiverEnvironment {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly logger: Logger;
  readonly handlers: TransportHandlers;
  readonly metrics?: TransportMetrics;
  readonly maxSnapshotBytes: number;
  /** Where an incoming snapshot's bytes go. */
  readonly snapshotStreams: SnapshotStreams;
  /** Where the peer streams report what they buffer (gavel_server_stream*{stream="peer_receive"}). */
  readonly streams?: StreamTally;
}

const ackBytes = encodedSize('gavel.raft.v1.StreamAck');

export function peerService(env: ReceiverEnvironment): grpc.UntypedServiceImplementation {
  return {
    Stream: (call: grpc.ServerDuplexStream<Framed<Uint8Array>, WireStreamAck>) => receiveStream(env, call),
    SendSnapshot: (call: grpc.ServerReadableStream<Framed<WireSnapshotChunk>, object>, callback: grpc.sendUnaryData<object>) =>
      receiveSnapshot(env, call, callback),
    LeaseRenew: unary(env, async (request: WireLeaseRenewRequest): Promise<WireLeaseRenewResponse> => {
      const ttl = await env.handlers.leaseRenew(BigInt(request.id));
      return { ttl: String(ttl) };
    }),
    LeaseTimeToLive: unary(env, async (request: WireLeaseTtlRequest): Promise<WireLeaseTtlResponse> => {
      const info = await env.handlers.leaseTimeToLive(BigInt(request.id), request.keys);
      return { ttl: String(info.ttl), granted_ttl: String(info.grantedTtl), keys: info.keys.map((k) => Buffer.from(k.buffer, k.byteOffset, k.byteLength)) };
    }),
    // Not authenticated: a joining member has no ids yet. It reveals only what `member list` shows.
    Members: (_call: grpc.ServerUnaryCall<object, object>, callback: grpc.sendUnaryData<object>) => {
      const members = env.handlers.members().map((m) => ({
        id: m.id.toString(),
        name: m.name,
        peer_urls: [...m.peerUrls],
        client_urls: [...m.clientUrls],
        is_learner: m.isLearner,
      }));
      callback(null, { cluster_id: env.clusterId.toString(), members });
    },
  };
}

type Authentication = { ok: true; from: bigint } | { ok: false; error: ServiceErrorLike };

/**
 * A call from another cluster, or meant for another member (a stale peer URL now pointing at a
 * different member), is refused before anything is delivered.
 */
export function authenticate(env: ReceiverEnvironment, metadata: grpc.Metadata): Authentication {
  const cluster = parseUint64(metadata.get(METADATA_CLUSTER_ID)[0]);
  if (cluster !== env.clusterId) return refuse(grpc.status.FAILED_PRECONDITION, 'gavel: cluster id mismatch');
  const to = metadata.get(METADATA_TO)[0];
  if (to !== undefined && parseUint64(to) !== env.memberId) return refuse(grpc.status.FAILED_PRECONDITION, 'gavel: member id mismatch');
  const from = parseUint64(metadata.get(METADATA_FROM)[0]);
  if (from === undefined) return refuse(grpc.status.INVALID_ARGUMENT, 'gavel: missing gavel-from metadata');
  return { ok: true, from };
}

function refuse(code: grpc.status, text: string): Authentication {
  return { ok: false, error: { code, details: text, message: text } };
}

function parseUint64(value: grpc.MetadataValue | undefined): bigint | undefined {
  return typeof value === 'string' && /^\d{1,20}$/.test(value) ? BigInt(value) : undefined;
}

function receiveStream(env: ReceiverEnvironment, call: grpc.ServerDuplexStream<Framed<Uint8Array>, WireStreamAck>): void {
  // The client cancelling is normal (peer stopped or reconnecting); grpc-js reports it here.
  call.on('error', () => undefined);
  const auth = authenticate(env, call.metadata);
  if (!auth.ok) {
    env.logger.warn('refused peer stream', { peer: call.metadata.get(METADATA_FROM)[0], error: auth.error.details });
    call.emit('error', auth.error);
    return;
  }
  const from = auth.from;
  let failed = false;
  // Acks the sender does not read stop this side reading its batches (the sender then backs up
  // into its bounded queue), instead of piling up here.
  const output = new StreamOutput<WireStreamAck>(call, { kind: 'peer_receive', tally: env.streams });
  const ack = (seq: string): void => {
    const message = { seq };
    output.write(message, ackBytes(message));
  };
  ack('0'); // accepted: the sender counts the stream as connected from now on
  call.on('data', (frame: Framed<Uint8Array>) => {
    if (failed) return;
    env.metrics?.receivedBytes(from, frame.bytes);
    let batch: Batch;
    try {
      batch = decodeBatch(frame.value);
    } catch (error) {
      failed = true;
      const refusal = toServiceError(error);
      env.logger.warn('peer sent a bad batch', { peer: from, error: refusal.details });
      call.emit('error', refusal);
      return;
    }
    deliver(env, from, batch.messages);
    if (batch.wantAck) ack(String(batch.seq));
  });
  call.on('end', () => call.end());
}

/** Largest Raft stream frame accepted: batches are cut at maxBatchBytes (4 MiB) by the sender. */
export const MAX_STREAM_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * The listening side of a Raft stream connection (raft-stream.ts), after its magic: a hello
 * checked as the gRPC stream's metadata is, then batches delivered in order as they arrive.
 * Answers (acks) that the dialler does not read stop this side reading, as on the gRPC stream.
 */
export function receiveRawStream(env: ReceiverEnvironment, socket: Socket, rest: Buffer): void {
  const reader = new FrameReader(MAX_STREAM_FRAME_BYTES);
  let from: bigint | undefined;
  let failed = false;
  const output = new StreamOutput<Buffer>(socket, { kind: 'peer_receive', tally: env.streams, reader: socket });
  const answer = (payload: Buffer): void => {
    const bytes = frame(payload);
    output.write(bytes, bytes.byteLength);
  };
  const refuse = (reason: string): void => {
    failed = true;
    env.logger.warn('refused peer stream', { peer: from?.toString(), error: reason });
    socket.end(frame(encodeAnswer({ kind: AnswerKind.Refusal, reason })));
    socket.destroySoon();
  };
  const onFrame = (payload: Uint8Array): void => {
    if (from === undefined) {
      const hello = decodeHello(payload);
      if (hello.clusterId !== env.clusterId) return refuse('gavel: cluster id mismatch');
      if (hello.to !== 0n && hello.to !== env.memberId) return refuse('gavel: member id mismatch');
      from = hello.from;
      answer(encodeAnswer({ kind: AnswerKind.Ack, seq: 0n })); // accepted
      return;
    }
    env.metrics?.receivedBytes(from, payload.byteLength + 4);
    const batch = decodeBatch(payload);
    deliver(env, from, batch.messages);
    if (batch.wantAck) answer(encodeAnswer({ kind: AnswerKind.Ack, seq: BigInt(batch.seq) }));
  };
  const onData = (chunk: Buffer): void => {
    if (failed) return;
    try {
      for (const payload of reader.push(chunk)) {
        onFrame(payload);
        if (failed) return;
      }
    } catch (error) {
      if (!(error instanceof StreamProtocolError) && !(error instanceof GavelError)) throw error;
      refuse(`gavel: bad peer stream: ${error.message}`);
    }
  };
  socket.setNoDelay(true);
  socket.on('error', () => undefined); // a peer going away is normal; 'close' ends the stream
  socket.on('data', onData);
  if (rest.byteLength > 0) onData(rest);
}

/**
 * Delivers in order; a message not to this member, or not from the peer that sent it, is
 * dropped. Except a forwarded ReadIndex: a follower that gets one (its sender thought it was
 * the leader) passes it on to its leader with the original requester as `from`, so the leader
 * answers the requester directly, as etcd's raft does.
 */
export function deliver(env: Pick<ReceiverEnvironment, 'memberId' | 'logger' | 'handlers'>, from: bigint, messages: readonly Message[]): void {
  for (const m of messages) {
    if (m.to !== env.memberId || (m.from !== from && m.type !== 'readIndex')) {
      env.logger.warn('dropped a misaddressed peer message', { peer: from, type: m.type, from: m.from, to: m.to });
      continue;
    }
    env.handlers.onMessage(m);
  }
}

function receiveSnapshot(
  env: ReceiverEnvironment,
  call: grpc.ServerReadableStream<Framed<WireSnapshotChunk>, object>,
  callback: grpc.sendUnaryData<object>,
): void {
  const auth = authenticate(env, call.metadata);
  if (!auth.ok) {
    call.on('error', () => undefined);
    callback(auth.error);
    return;
  }
  const from = auth.from;
  const sequence = new ChunkSequence(env.maxSnapshotBytes);
  let incoming: IncomingSnapshot | undefined;
  // Chunks are written in order, one at a time: the call is paused while a write is under way,
  // so a fast sender cannot pile chunks up in memory ahead of the disk.
  let writes: Promise<void> = Promise.resolve();
  let failed = false;
  const fail = (error: ServiceErrorLike): void => {
    if (failed) return;
    failed = true;
    incoming?.abort();
    env.logger.warn('snapshot receive failed', { peer: from, error: error.details });
    callback(error);
  };
  call.on('error', () => fail({ code: grpc.status.CANCELLED, details: 'gavel: snapshot stream broke off', message: 'gavel: snapshot stream broke off' }));
  call.on('data', (frame: Framed<WireSnapshotChunk>) => {
    if (failed) return;
    env.metrics?.receivedBytes(from, frame.bytes);
    let next: ReturnType<ChunkSequence['next']>;
    try {
      next = sequence.next(frame.value);
    } catch (error) {
      fail(toServiceError(error));
      return;
    }
    if (next.header !== undefined) {
      // Check the address on the first chunk, before megabytes arrive for nothing.
      if (next.header.to !== env.memberId || next.header.from !== from) {
        fail({ code: grpc.status.FAILED_PRECONDITION, details: 'gavel: member id mismatch', message: 'gavel: member id mismatch' });
        return;
      }
      incoming = env.snapshotStreams.receive(next.header, next.announcedBytes);
    }
    const target = incoming!;
    const data = next.data;
    call.pause();
    writes = writes.then(() => target.write(data)).then(
      () => {
        if (!failed) call.resume();
      },
      (error: unknown) => fail(toServiceError(error)),
    );
  });
  call.on('end', () => {
    void writes.then(async () => {
      if (failed) return;
      let m: SnapMessage;
      try {
        const header = sequence.end();
        const data = await incoming!.finish();
        m = { ...header, snapshot: { metadata: header.snapshot.metadata, data } };
      } catch (error) {
        fail(toServiceError(error));
        return;
      }
      env.logger.info('snapshot received', { peer: from, index: m.snapshot.metadata.index, bytes: sequence.receivedBytes });
      env.handlers.onMessage(m);
      callback(null, {});
    });
  });
}

/** A unary handler: authenticate, run, and send any error through the etcd status table. */
function unary<Req, Res>(env: ReceiverEnvironment, fn: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const auth = authenticate(env, call.metadata);
    if (!auth.ok) {
      callback(auth.error);
      return;
    }
    // fn runs inside then() so that a synchronous throw (e.g. BigInt of bad input) is caught too.
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error)),
      );
  };
}
