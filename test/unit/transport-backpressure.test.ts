// Goal: the peer streams between members are bounded both ways: a sender that never reads its acks stops the receiver reading (instead of acks piling up), and a receiver that never reads leaves the sender's batches in its bounded queue (instead of in gRPC's buffer); either way all is freed when the stream goes.
import { createServer, type Http2Server } from 'node:http2';
import { connect as connectTcp, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BUFFERED_BYTES } from '../../server/api/stream-output.js';
import { GavelError } from '../../server/errors.js';
import { silentLogger } from '../../server/log.js';
import { StreamAccounting } from '../../server/metrics/streams.js';
import type { Message } from '../../server/raft/types.js';
import { AnswerKind, encodeAnswer, encodeHello, frame, STREAM_MAGIC } from '../../server/transport/raft-stream.js';
import { encodeBatch } from '../../server/transport/wire.js';
import { METADATA_CLUSTER_ID, METADATA_FROM, METADATA_TO } from '../../server/transport/service.js';
import { PeerTransport, type PeerTransportOptions } from '../../server/transport/transport.js';
import { grpcFrame, UnreadStream } from '../helpers/unread.js';

const CLUSTER = 0xc1n;
const started: PeerTransport[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await Promise.all(started.splice(0).map((t) => t.stop()));
});

async function startTransport(id: bigint, accounting: StreamAccounting, options: Partial<PeerTransportOptions> = {}): Promise<{ transport: PeerTransport; address: string }> {
  const transport = new PeerTransport({
    memberId: id,
    clusterId: CLUSTER,
    logger: silentLogger,
    listenUrls: [new URL('http://127.0.0.1:0')],
    handlers: {
      onMessage: () => undefined,
      leaseRenew: () => Promise.reject(new GavelError('NotLeader')),
      leaseTimeToLive: () => Promise.reject(new GavelError('NotLeader')),
      members: () => [],
    },
    streams: accounting,
    ...options,
  });
  started.push(transport);
  const [address] = await transport.start();
  if (address === undefined) throw new Error('no peer address');
  return { transport, address };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A peer that accepts the stream (StreamAck 0) and then never reads a byte of it. */
async function deafPeer(): Promise<string> {
  const server: Http2Server = createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(grpcFrame('gavel.raft.v1.StreamAck', { seq: '0' }));
    stream.pause();
  });
  server.on('session', (session) => cleanups.push(() => session.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A member speaking the Raft stream that accepts it (ack 0) and then never reads a byte of it. */
async function deafStreamPeer(): Promise<string> {
  const server = createTcpServer((socket: Socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => {
      socket.write(frame(encodeAnswer({ kind: AnswerKind.Ack, seq: 0n })));
      socket.pause();
    });
    cleanups.push(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Writes `chunk` until the socket stays blocked for stallMs or maxWrites were made; returns the writes taken. */
async function floodSocket(socket: Socket, chunk: Buffer, maxWrites: number, stallMs = 500): Promise<number> {
  let taken = 0;
  for (let i = 0; i < maxWrites && !socket.destroyed; i++) {
    const room = socket.write(chunk, (error) => {
      if (error === null || error === undefined) taken++;
    });
    if (!room) {
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), stallMs);
        socket.once('drain', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!drained) break;
    } else {
      // The receiver is in this process: let it read.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return taken;
}

function append(from: bigint, to: bigint, index: number, bytes: number): Message {
  return { type: 'app', from, to, term: 1, logTerm: 1, index, commit: 0, entries: [{ term: 1, index: index + 1, type: 'normal', data: new Uint8Array(bytes) }] };
}

describe('peer stream back-pressure', () => {
  it('receiver: acks the sender does not read stop this member reading its batches', async () => {
    const accounting = new StreamAccounting(new Registry());
    const { address } = await startTransport(1n, accounting);
    const sender = new UnreadStream(address, '/gavel.raft.v1.Peer/Stream', { [METADATA_CLUSTER_ID]: String(CLUSTER), [METADATA_FROM]: '2', [METADATA_TO]: '1' });
    cleanups.push(() => sender.close());
    const batch = grpcFrame('gavel.raft.v1.MessageBatch', { messages: [], seq: '7', want_ack: true });
    const maxFrames = 200_000;
    const flood = await sender.flood(batch, { maxFrames });
    const figures = accounting.snapshot('peer_receive');
    expect(flood.sent).toBeLessThan(maxFrames);
    expect(figures.open).toBe(1);
    expect(figures.paused).toBeGreaterThanOrEqual(1);
    expect(figures.peakBytes).toBeLessThanOrEqual(DEFAULT_MAX_BUFFERED_BYTES);
    sender.close();
    await waitFor('the receiver stream freed', () => accounting.snapshot('peer_receive').open === 0);
    expect(accounting.snapshot('peer_receive').bytes).toBe(0);
  });

  it('receiver, Raft stream: acks the sender does not read stop this member reading its batches', async () => {
    const accounting = new StreamAccounting(new Registry());
    const { address } = await startTransport(1n, accounting);
    const socket = connectTcp({ host: '127.0.0.1', port: Number(address.split(':')[1]) });
    socket.on('error', () => undefined);
    cleanups.push(() => socket.destroy());
    socket.pause(); // never reads the answers
    socket.write(Buffer.concat([STREAM_MAGIC, frame(encodeHello({ clusterId: CLUSTER, from: 2n, to: 1n }))]));
    const batch = frame(encodeBatch([], 7, true));
    const perWrite = 100;
    // The answers fill the kernel's socket buffers (megabytes on loopback) before the receiver's own bound.
    const maxWrites = 40_000;
    const taken = await floodSocket(socket, Buffer.concat(Array.from({ length: perWrite }, () => batch)), maxWrites);
    const figures = accounting.snapshot('peer_receive');
    expect(taken).toBeLessThan(maxWrites);
    expect(figures.open).toBe(1);
    expect(figures.paused).toBeGreaterThanOrEqual(1);
    expect(figures.peakBytes).toBeLessThanOrEqual(DEFAULT_MAX_BUFFERED_BYTES + 64);
    socket.destroy();
    await waitFor('the receiver stream freed', () => accounting.snapshot('peer_receive').open === 0);
    expect(accounting.snapshot('peer_receive').bytes).toBe(0);
  });

  for (const [name, deaf] of [['Raft stream', deafStreamPeer], ['gRPC stream (a member from before the Raft stream)', deafPeer]] as const) {
  it(`sender, ${name}: batches a peer does not read wait in the bounded queue, not in the socket; freed on removal`, async () => {
    const accounting = new StreamAccounting(new Registry());
    const maxBatchBytes = 64 * 1024;
    const maxQueueBytes = 2 * 1024 * 1024;
    const { transport } = await startTransport(1n, accounting, { maxBatchBytes, maxQueueBytes });
    transport.addPeer(2n, [await deaf()]);
    await waitFor('the stream accepted', () => transport.isActive(2n));
    expect(transport.via(2n)).toBe(deaf === deafPeer ? 'grpc' : 'raft-stream');
    // 12.8 MB of appends, a turn at a time as Raft would send them.
    for (let i = 0; i < 400; i++) {
      transport.send([append(1n, 2n, i, 32 * 1024)]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor('the sender congested', () => accounting.snapshot('peer_send').paused >= 1);
    const figures = accounting.snapshot('peer_send');
    expect(figures.open).toBe(1);
    // The bound plus the one batch that crossed it.
    expect(figures.peakBytes).toBeLessThanOrEqual(DEFAULT_MAX_BUFFERED_BYTES + maxBatchBytes + 1024);
    expect(transport.pending(2n)?.bytes).toBeLessThanOrEqual(maxQueueBytes);
    transport.removePeer(2n);
    expect(accounting.snapshot('peer_send')).toMatchObject({ open: 0, bytes: 0 });
  });
  }
});
