// Goal: PeerTransports on 127.0.0.1 deliver Raft messages in order, batch, stream snapshots,
// survive restarts and unreachable peers with bounded memory, refuse foreign clusters, and
// plumb the leader-side lease calls with their errors intact.
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { GavelError, isGavelError } from '../../server/errors.js';
import { silentLogger } from '../../server/log.js';
import type { Message, SnapMessage } from '../../server/raft/types.js';
import { PeerTransport, type PeerTransportOptions, type TransportHandlers } from '../../server/transport/transport.js';
import { peerService } from '../../server/transport/receiver.js';
import { peerDefinitions } from '../../server/transport/service.js';
import { memorySnapshotStreams } from '../../server/transport/snapshot.js';

interface Member {
  readonly id: bigint;
  readonly transport: PeerTransport;
  readonly url: string;
  readonly received: Message[];
  readonly unreachable: bigint[];
  readonly snapshotStatus: string[];
  readonly writes: Map<bigint, number>;
  readonly roundTrips: number[];
  receivedBytes: number;
}

const started: PeerTransport[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.stop()));
});

async function startMember(id: bigint, options: Partial<PeerTransportOptions> & { port?: number } = {}): Promise<Member> {
  const received: Message[] = [];
  const unreachable: bigint[] = [];
  const snapshotStatus: string[] = [];
  const writes = new Map<bigint, number>();
  const roundTrips: number[] = [];
  const handlers: TransportHandlers = {
    onMessage: (m) => received.push(m),
    leaseRenew: () => Promise.reject(new GavelError('NotLeader')),
    leaseTimeToLive: () => Promise.reject(new GavelError('NotLeader')),
    members: () => [{ id, name: `m${id}`, peerUrls: [], clientUrls: [], isLearner: false }],
  };
  const member: Member = { id, transport: undefined as unknown as PeerTransport, url: '', received, unreachable, snapshotStatus, writes, roundTrips, receivedBytes: 0 };
  const transport = new PeerTransport({
    memberId: id,
    clusterId: 0xc1n,
    logger: silentLogger,
    listenUrls: [new URL(`http://127.0.0.1:${options.port ?? 0}`)],
    handlers,
    onUnreachable: (peer) => unreachable.push(peer),
    onSnapshotStatus: (peer, status) => snapshotStatus.push(`${peer}:${status}`),
    metrics: {
      sentBytes: (peer) => writes.set(peer, (writes.get(peer) ?? 0) + 1),
      receivedBytes: (_peer, n) => (member.receivedBytes += n),
      roundTrip: (_peer, seconds) => roundTrips.push(seconds),
      peerUnreachable: () => undefined,
    },
    ...options,
  });
  started.push(transport);
  const [address] = await transport.start();
  return Object.assign(member, { transport, url: `http://${address}` });
}

function connect(...members: Member[]): void {
  for (const a of members) for (const b of members) if (a !== b) a.transport.addPeer(b.id, [b.url]);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function heartbeat(from: bigint, to: bigint, commit: number): Message {
  return { type: 'heartbeat', from, to, term: 1, commit, context: new Uint8Array(0) };
}

const commits = (messages: readonly Message[], from?: bigint): number[] =>
  messages.filter((m) => from === undefined || m.from === from).map((m) => (m.type === 'heartbeat' ? m.commit : -1));

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('PeerTransport', () => {
  it('delivers messages in order between three members, in every direction', async () => {
    const members = await Promise.all([startMember(1n), startMember(2n), startMember(3n)]);
    connect(...members);
    for (let i = 0; i < 200; i++) {
      for (const a of members) a.transport.send(members.filter((b) => b !== a).map((b) => heartbeat(a.id, b.id, i)));
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve)); // spread over several turns
    }
    const expected = Array.from({ length: 200 }, (_, i) => i);
    for (const b of members) {
      await waitFor(`member ${b.id} to receive 400 messages`, () => b.received.length === 400);
      for (const a of members) if (a !== b) expect(commits(b.received, a.id)).toEqual(expected);
      expect(b.received.every((m) => m.to === b.id)).toBe(true);
    }
    expect(members[0]!.transport.isActive(2n)).toBe(true);
  });

  it('batches everything sent in one turn into few writes, respecting maxBatchBytes', async () => {
    const [a, b] = await Promise.all([startMember(1n), startMember(2n)]);
    const small = await startMember(3n, { maxBatchBytes: 96 * 100 });
    connect(a, b, small);
    await waitFor('streams', () => a.transport.isActive(2n) && small.transport.isActive(2n));
    a.writes.clear();
    small.writes.clear();
    a.transport.send(Array.from({ length: 1000 }, (_, i) => heartbeat(1n, 2n, i)));
    small.transport.send(Array.from({ length: 1000 }, (_, i) => heartbeat(3n, 2n, i)));
    await waitFor('2000 messages', () => b.received.length === 2000);
    expect(commits(b.received, 1n)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(commits(b.received, 3n)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(a.writes.get(2n)).toBe(1);
    expect(small.writes.get(2n)).toBe(10);
    expect(b.receivedBytes).toBeGreaterThan(0);
  });

  it('waits for drain when the stream buffers, and loses nothing in order', async () => {
    const [a, b] = await Promise.all([startMember(1n, { maxBatchBytes: 200 }), startMember(2n)]);
    connect(a, b);
    await waitFor('stream', () => a.transport.isActive(2n));
    a.writes.clear();
    // 2 messages per batch: 2000 writes in one flush, far beyond the stream's high-water mark.
    a.transport.send(Array.from({ length: 4000 }, (_, i) => heartbeat(1n, 2n, i))); // within the 4096 queue bound
    await waitFor('4000 messages', () => b.received.length === 4000, 10_000);
    expect(commits(b.received)).toEqual(Array.from({ length: 4000 }, (_, i) => i));
    expect(a.writes.get(2n)).toBe(2000);
  });

  it('follows updatePeer to a new address and forgets a removed peer', async () => {
    const [a, b] = await Promise.all([startMember(1n), startMember(2n)]);
    a.transport.addPeer(2n, [`http://127.0.0.1:${await closedPort()}`]);
    await waitFor('unreachable', () => a.unreachable.includes(2n));
    a.transport.updatePeer(2n, [b.url]);
    a.transport.send([heartbeat(1n, 2n, 1)]);
    await waitFor('delivery at the new address', () => b.received.length === 1);
    a.transport.removePeer(2n);
    expect(a.transport.isActive(2n)).toBe(false);
    expect(a.transport.pending(2n)).toBeUndefined();
    a.transport.send([heartbeat(1n, 2n, 2)]); // dropped, no throw
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(b.received).toHaveLength(1);
  });

  it('sends a 5 MB snapshot as one snap message and reports finish', async () => {
    const [a, b] = await Promise.all([startMember(1n), startMember(2n)]);
    connect(a, b);
    const data = new Uint8Array(5 * 1024 * 1024 + 123);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0xff;
    const snap: SnapMessage = { type: 'snap', from: 1n, to: 2n, term: 4, snapshot: { metadata: { index: 1000, term: 4, confState: { voters: [1n, 2n], learners: [3n] } }, data } };
    a.transport.send([snap, heartbeat(1n, 2n, 7)]);
    await waitFor('finish', () => a.snapshotStatus.length > 0, 10_000);
    expect(a.snapshotStatus).toEqual(['2:finish']);
    const snaps = b.received.filter((m): m is SnapMessage => m.type === 'snap');
    expect(snaps).toHaveLength(1);
    expect(snaps[0]!.snapshot.metadata).toEqual(snap.snapshot.metadata);
    expect(Buffer.compare(snaps[0]!.snapshot.data, data)).toBe(0);
    expect(a.writes.get(2n)).toBeGreaterThanOrEqual(6); // 1 MiB chunks
    await waitFor('the heartbeat beside it', () => b.received.some((m) => m.type === 'heartbeat'));
  });

  it('reports a snapshot failure when the peer is down or unknown', async () => {
    const a = await startMember(1n);
    a.transport.addPeer(2n, [`http://127.0.0.1:${await closedPort()}`]);
    const snapTo = (to: bigint): SnapMessage => ({ type: 'snap', from: 1n, to, term: 1, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array(10) } });
    a.transport.send([snapTo(2n), snapTo(9n)]);
    await waitFor('two failures', () => a.snapshotStatus.length === 2);
    expect(a.snapshotStatus.sort()).toEqual(['2:failure', '9:failure']);
  });

  it('reconnects to a peer restarted on the same port and delivers later messages', async () => {
    const [a, b] = await Promise.all([startMember(1n), startMember(2n)]);
    connect(a, b);
    a.transport.send([heartbeat(1n, 2n, 1)]);
    await waitFor('first message', () => b.received.length === 1);
    await b.transport.stop();
    await waitFor('stream down', () => !a.transport.isActive(2n));
    a.transport.send([heartbeat(1n, 2n, 2)]); // queued (or lost) while the peer is down
    const port = Number(new URL(b.url).port);
    const b2 = await startMember(2n, { port });
    await waitFor('reconnect', () => a.transport.isActive(2n), 10_000);
    a.transport.send([heartbeat(1n, 2n, 3)]);
    await waitFor('later message', () => b2.received.some((m) => m.type === 'heartbeat' && m.commit === 3));
    expect(commits(b2.received).filter((c) => c !== 2)).toEqual([3]);
    expect(a.unreachable).toContain(2n);
  });

  it('reports an unreachable peer, never crashes and bounds its queue', async () => {
    const a = await startMember(1n, { maxQueueMessages: 100, maxQueueBytes: 1024 * 1024 });
    a.transport.addPeer(2n, [`http://127.0.0.1:${await closedPort()}`]);
    await waitFor('unreachable', () => a.unreachable.length > 0);
    const entry = { term: 1, index: 1, type: 'normal' as const, data: new Uint8Array(64 * 1024) };
    for (let turn = 0; turn < 20; turn++) {
      a.transport.send(Array.from({ length: 500 }, (_, i) => heartbeat(1n, 2n, turn * 500 + i)));
      a.transport.send([{ type: 'app', from: 1n, to: 2n, term: 1, logTerm: 1, index: 0, entries: [entry, entry], commit: 0 }]);
      const pending = a.transport.pending(2n)!;
      expect(pending.messages).toBeLessThanOrEqual(100);
      expect(pending.bytes).toBeLessThanOrEqual(1024 * 1024);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(a.transport.isActive(2n)).toBe(false);
    expect(a.unreachable.every((p) => p === 2n)).toBe(true);
    // At most once per back-off period: far fewer reports than the 10 000 sends.
    expect(a.unreachable.length).toBeLessThan(20);
  });

  it('refuses a peer from another cluster and a call meant for another member', async () => {
    const a = await startMember(1n);
    const foreign = await startMember(2n, { clusterId: 0xbadn });
    const b = await startMember(3n);
    a.transport.addPeer(2n, [foreign.url]);
    a.transport.addPeer(4n, [b.url]); // b's address, but b is member 3
    a.transport.send([heartbeat(1n, 2n, 1), heartbeat(1n, 4n, 1)]);
    await waitFor('both reported unreachable', () => a.unreachable.includes(2n) && a.unreachable.includes(4n));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(foreign.received).toEqual([]);
    expect(b.received).toEqual([]);
    expect(a.transport.isActive(2n)).toBe(false);
    const error: unknown = await a.transport.leaseRenew(2n, 5n).catch((e: unknown) => e);
    expect(isGavelError(error, 'NoLeader')).toBe(true);
    expect((error as Error).message).toMatch(/FAILED_PRECONDITION: gavel: cluster id mismatch/);
    expect((error as Error).message).not.toMatch(/member id/);
    const misaddressed: unknown = await a.transport.leaseRenew(4n, 5n).catch((e: unknown) => e);
    expect((misaddressed as Error).message).toMatch(/FAILED_PRECONDITION: gavel: member id mismatch/);
  });

  it('speaks the Raft stream to members, and gRPC to a member from before the Raft stream, both ways', async () => {
    const [a, b] = await Promise.all([startMember(1n), startMember(2n)]);
    // An older member: the gRPC Peer service alone, on a port grpc-js binds itself.
    const oldReceived: Message[] = [];
    const old = new grpc.Server();
    old.addService(peerDefinitions().server, peerService({
      memberId: 3n,
      clusterId: 0xc1n,
      logger: silentLogger,
      handlers: { onMessage: (m) => oldReceived.push(m), leaseRenew: () => Promise.reject(new GavelError('NotLeader')), leaseTimeToLive: () => Promise.reject(new GavelError('NotLeader')), members: () => [] },
      maxSnapshotBytes: 1 << 20,
      snapshotStreams: memorySnapshotStreams(1 << 20),
    }));
    const port = await new Promise<number>((resolve, reject) => old.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
    try {
      connect(a, b);
      a.transport.addPeer(3n, [`http://127.0.0.1:${port}`]);
      for (let i = 1; i <= 3; i++) a.transport.send([heartbeat(1n, 2n, i), heartbeat(1n, 3n, i)]);
      b.transport.send([heartbeat(2n, 1n, 1)]);
      await waitFor('delivery to the new and the old member', () => b.received.length === 3 && oldReceived.length >= 1 && a.received.length === 1);
      expect(a.transport.via(2n)).toBe('raft-stream');
      expect(b.transport.via(1n)).toBe('raft-stream');
      expect(a.transport.via(3n)).toBe('grpc');
      // Messages sent before the fallback found its way may be lost (Raft resends); later ones arrive in order.
      a.transport.send([heartbeat(1n, 3n, 10), heartbeat(1n, 3n, 11)]);
      await waitFor('later messages to the old member', () => commits(oldReceived).includes(11));
      expect(commits(oldReceived).slice(-2)).toEqual([10, 11]);
    } finally {
      old.forceShutdown();
    }
  });

  it('measures the round trip through acknowledged batches', async () => {
    const [a, b] = await Promise.all([startMember(1n, { probeIntervalMs: 1 }), startMember(2n)]);
    connect(a, b);
    for (let i = 0; i < 5; i++) {
      a.transport.send([heartbeat(1n, 2n, i)]);
      await waitFor('delivery', () => b.received.length === i + 1);
    }
    await waitFor('a round trip', () => a.roundTrips.length > 0);
    expect(a.roundTrips.every((s) => s >= 0 && s < 5)).toBe(true);
  });
});

describe('PeerTransport lease calls', () => {
  const MAX_LEASE = 0x7fff_ffff_ffff_ffffn;

  async function leaderAndFollower(): Promise<{ follower: Member; calls: string[] }> {
    const calls: string[] = [];
    const leader = await startMember(1n, {
      handlers: {
        members: () => [],
        onMessage: () => undefined,
        leaseRenew: async (id) => {
          calls.push(`renew ${id}`);
          if (id === MAX_LEASE) return 42;
          if (id === 2n) throw new GavelError('NotLeader');
          if (id === 3n) throw new Error('disk on fire');
          if (id === 4n) return new Promise<number>(() => undefined); // never answers
          throw new GavelError('LeaseNotFound');
        },
        leaseTimeToLive: async (id, keys) => {
          calls.push(`ttl ${id} ${keys}`);
          if (id !== MAX_LEASE) throw new GavelError('LeaseNotFound');
          return { ttl: 7, grantedTtl: 10, keys: keys ? [new Uint8Array([0, 255]), new TextEncoder().encode('k')] : [] };
        },
      },
    });
    const follower = await startMember(2n, { requestTimeoutMs: 300 });
    follower.transport.addPeer(1n, [leader.url]);
    return { follower, calls };
  }

  it('reaches the leader handler with 63-bit ids and returns its answer', async () => {
    const { follower, calls } = await leaderAndFollower();
    expect(await follower.transport.leaseRenew(1n, MAX_LEASE)).toBe(42);
    const info = await follower.transport.leaseTimeToLive(1n, MAX_LEASE, true);
    expect({ ...info, keys: info.keys.map((k) => Array.from(k)) }).toEqual({ ttl: 7, grantedTtl: 10, keys: [[0, 255], [107]] });
    expect((await follower.transport.leaseTimeToLive(1n, MAX_LEASE, false)).keys).toEqual([]);
    expect(calls).toEqual([`renew ${MAX_LEASE}`, `ttl ${MAX_LEASE} true`, `ttl ${MAX_LEASE} false`]);
  });

  it('turns handler errors back into the same GavelError codes', async () => {
    const { follower } = await leaderAndFollower();
    const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (e instanceof GavelError ? e.code : `other ${String(e)}`));
    expect(await codeOf(follower.transport.leaseRenew(1n, 1n))).toBe('LeaseNotFound');
    expect(await codeOf(follower.transport.leaseRenew(1n, 2n))).toBe('NotLeader');
    expect(await codeOf(follower.transport.leaseRenew(1n, 3n))).toBe('NoLeader'); // INTERNAL: not an etcd text
    expect(await codeOf(follower.transport.leaseTimeToLive(1n, 1n, false))).toBe('LeaseNotFound');
    expect(await codeOf(follower.transport.leaseRenew(9n, 1n))).toBe('NoLeader'); // unknown peer
    expect(await codeOf(follower.transport.leaseRenew(1n, 4n))).toBe('NoLeader'); // deadline
  });

  it('stops waiting when the caller aborts', async () => {
    const { follower } = await leaderAndFollower();
    const controller = new AbortController();
    const pending = follower.transport.leaseRenew(1n, 4n, controller.signal).catch((e: unknown) => e);
    setTimeout(() => controller.abort(new Error('client went away')), 50);
    expect(((await pending) as Error).message).toBe('client went away');
  });
});
