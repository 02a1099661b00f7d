// Goal: the peer streams between members are bounded both ways: a sender that never reads its acks stops the receiver reading (instead of acks piling up), and a receiver that never reads leaves the sender's batches in its bounded queue (instead of in gRPC's buffer); either way all is freed when the stream goes.
import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BUFFERED_BYTES } from '../../server/api/stream-output.js';
import { GavelError } from '../../server/errors.js';
import { silentLogger } from '../../server/log.js';
import { StreamAccounting } from '../../server/metrics/streams.js';
import type { Message } from '../../server/raft/types.js';
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

  it('sender: batches a peer does not read wait in the bounded queue, not in gRPC; freed on removal', async () => {
    const accounting = new StreamAccounting(new Registry());
    const maxBatchBytes = 64 * 1024;
    const maxQueueBytes = 2 * 1024 * 1024;
    const { transport } = await startTransport(1n, accounting, { maxBatchBytes, maxQueueBytes });
    transport.addPeer(2n, [await deafPeer()]);
    await waitFor('the stream accepted', () => transport.isActive(2n));
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
});
