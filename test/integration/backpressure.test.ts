/**
 * Goal: a client that sends on a stream but never reads the answers cannot grow a member: for
 * each kind of client stream (LeaseKeepAlive, Watch, Election Observe, Coordinator Acquire) the
 * member's own accounting of that stream's buffered bytes stays under its bound, the member stops
 * reading (or producing) instead, another client's requests all succeed meanwhile, and once the
 * client goes away the accounting is back to where it was. Assertions are on the member's
 * /metrics figures and on counts, never on timings; every wait is bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { Client } from '../../client/index.js';
import { DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_PENDING_REQUESTS } from '../../server/api/stream-output.js';
import { loadGrpc } from '../../server/proto.js';
import { startMember, stopAllMembers, targetFromEnv, waitUntil, type Member } from '../helpers/gavel.js';
import { EtcdGrpcClient, prefixEnd } from '../helpers/grpc.js';
import { grpcFrame, metricsUrl, scrape, streamFigures, UnreadStream, type StreamFigures } from '../helpers/unread.js';

/** What one stream may hold: the bound, plus the message that crossed it. */
const BOUND = DEFAULT_MAX_BUFFERED_BYTES;
const VALUE_BYTES = 16 * 1024;
/** Frames a flooding client tries to send; a member that keeps reading takes them all. */
const FLOOD_FRAMES = 200_000;

let member: Member;
let url: string;
let raw: EtcdGrpcClient;
let client: Client;

beforeAll(async () => {
  member = await startMember({ name: 'backpressure' });
  url = metricsUrl(member);
  raw = new EtcdGrpcClient(member.endpoint);
  client = new Client({ endpoints: [member.endpoint] });
});

afterAll(async () => {
  client?.close();
  raw?.close();
  await stopAllMembers();
});

/** Sequential put + get pairs from another client: how many of `count` succeeded. */
async function probe(prefix: string, count: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < count; i++) {
    try {
      await raw.put(`${prefix}/${i}`, String(i));
      const got = await raw.range(`${prefix}/${i}`);
      if (got.kvs[0]?.value.toString() === String(i)) ok++;
    } catch {
      // counted as a failure
    }
  }
  return ok;
}

/** Waits (bounded) until the kind is back to `open` streams and holds no bytes. */
async function released(kind: string, open: number): Promise<StreamFigures> {
  return waitUntil(`${kind} streams freed`, async () => {
    const figures = await streamFigures(url, kind);
    return figures.open === open && figures.bytes === 0 ? figures : undefined;
  }, 10_000, 50);
}

async function figures(kind: string): Promise<StreamFigures> {
  return streamFigures(url, kind);
}

describe.skipIf(targetFromEnv() === 'etcd')('back-pressure on every client stream', () => {
  it('LeaseKeepAlive: the member stops reading keep-alives whose answers are not read', async () => {
    const before = await figures('lease_keepalive');
    const lease = await raw.unary<{ ID: string }>('Lease', 'LeaseGrant', { TTL: 600 });
    const unread = new UnreadStream(member.endpoint, '/etcdserverpb.Lease/LeaseKeepAlive');
    const frame = grpcFrame('etcdserverpb.LeaseKeepAliveRequest', { ID: lease.ID });
    const [flood, probes] = await Promise.all([unread.flood(frame, { maxFrames: FLOOD_FRAMES }), probe('bp/keepalive', 20)]);
    // The member stopped reading: HTTP/2 flow control held the sender back.
    expect(flood.sent).toBeLessThan(FLOOD_FRAMES);
    expect(probes).toBe(20);
    const during = await figures('lease_keepalive');
    expect(during.open).toBe((before.open ?? 0) + 1);
    expect(during.paused).toBeGreaterThan(before.paused ?? 0);
    // The bound, plus the answers to keep-alives already read (each under 64 bytes).
    expect(during.peakBytes).toBeLessThanOrEqual(BOUND + DEFAULT_MAX_PENDING_REQUESTS * 64);
    expect(during.bytes).toBeLessThanOrEqual(BOUND + DEFAULT_MAX_PENDING_REQUESTS * 64);
    unread.close();
    await released('lease_keepalive', before.open ?? 0);
  });

  it('Watch: a watcher that does not read falls behind into history; its stream stops reading requests', async () => {
    const before = await figures('watch');
    const prefix = 'bp/watch/';
    const unread = new UnreadStream(member.endpoint, '/etcdserverpb.Watch/Watch');
    unread.send([grpcFrame('etcdserverpb.WatchRequest', { create_request: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) } })]);
    await waitUntil('watcher created', async () => ((await scrape(url))('etcd_debugging_mvcc_watcher_total') ?? 0) >= 1 ? true : undefined, 10_000, 20);
    const value = Buffer.alloc(VALUE_BYTES, 'w');
    const puts = async (): Promise<number> => {
      let ok = 0;
      for (let i = 0; i < 200; i++) await raw.put(`${prefix}${i % 10}`, value).then(() => ok++, () => undefined);
      return ok;
    };
    // Progress requests each ask for an answer too: requests the member must stop reading.
    const progress = grpcFrame('etcdserverpb.WatchRequest', { progress_request: {} });
    const [putsOk, flood] = await Promise.all([puts(), unread.flood(progress, { maxFrames: 50_000 })]);
    const during = await figures('watch');
    const metrics = await scrape(url);
    expect(putsOk).toBe(200);
    expect(during.open).toBe((before.open ?? 0) + 1);
    expect(during.paused).toBeGreaterThan(before.paused ?? 0);
    // The gRPC call's buffer and the hub's queue: each its bound plus the response that crossed it.
    const response = VALUE_BYTES + 1024;
    expect(during.peakBytes).toBeLessThanOrEqual(2 * (BOUND + response));
    expect(during.bytes).toBeLessThanOrEqual(2 * (BOUND + response));
    // 3.2 MB of events did not fit: the watcher catches up from history later (etcd's slow watcher).
    expect(metrics('etcd_debugging_mvcc_slow_watcher_total')).toBeGreaterThanOrEqual(1);
    expect(flood.sent).toBeLessThan(50_000);
    unread.close();
    await released('watch', before.open ?? 0);
    await waitUntil('watchers gone', async () => ((await scrape(url))('etcd_debugging_mvcc_watcher_total') === 0 ? true : undefined), 10_000, 50);
  });

  it('Election Observe: leaders the observer does not read wait for it, bounded', async () => {
    const before = await figures('election_observe');
    const watchBefore = await figures('watch');
    const name = 'bp-election';
    const session = await client.session({ ttlSeconds: 60 });
    const election = client.election(name, { session });
    await election.campaign('v0');
    const unread = new UnreadStream(member.endpoint, '/v3electionpb.Election/Observe');
    unread.send([grpcFrame('v3electionpb.LeaderRequest', { name: Buffer.from(name) })], true);
    await waitUntil('observer open', async () => ((await figures('election_observe')).open === (before.open ?? 0) + 1 ? true : undefined), 10_000, 20);
    let proclaimed = 0;
    for (let i = 1; i <= 200; i++) await election.proclaim(Buffer.alloc(VALUE_BYTES, String(i % 10))).then(() => proclaimed++, () => undefined);
    const during = await figures('election_observe');
    expect(proclaimed).toBe(200);
    expect(await probe('bp/observe', 5)).toBe(5);
    expect(during.paused).toBeGreaterThan(before.paused ?? 0);
    expect(during.peakBytes).toBeLessThanOrEqual(BOUND + VALUE_BYTES + 1024);
    unread.close();
    await released('election_observe', before.open ?? 0);
    // The observer's own (in-process) watch went with it.
    await released('watch', watchBefore.open ?? 0);
    await election.resign();
    await session.close();
  });

  it('Coordinator Acquire: WAIT pictures the waiter does not read are coalesced, not queued', async () => {
    const before = await figures('coordinator_acquire');
    const coordinator = coordinatorClient(member.endpoint);
    try {
      const lease = await raw.unary<{ ID: string }>('Lease', 'LeaseGrant', { TTL: 600 });
      const name = Buffer.from('bp-lock');
      // 64 readers with long owner names make every WAIT picture about 19 KB.
      for (let i = 0; i < 64; i++) {
        const granted = await coordinatorUnary<{ granted?: object | null }>(coordinator, 'TryAcquire', { name, lease: lease.ID, mode: 1, owner: `h${i}`.padEnd(256, 'x') });
        expect(granted.granted).toBeTruthy();
      }
      // Writers queued ahead of ours: each one leaving moves ours up, a new picture.
      const waiters = 120;
      for (let i = 0; i < waiters; i++) await queueWaiter(coordinator, { name, lease: lease.ID, mode: 0, owner: `w${i}` });
      const unread = new UnreadStream(member.endpoint, '/gavel.v1.Coordinator/Acquire');
      unread.send([grpcFrame('gavel.v1.AcquireRequest', { name, lease: lease.ID, mode: 0, owner: 'unread' })], true);
      await waitUntil('the unread waiter queued', async () => {
        const lock = await coordinatorUnary<{ waiters: object[] }>(coordinator, 'Describe', { name });
        return lock.waiters.length === waiters + 1 ? true : undefined;
      }, 10_000, 20);
      let releasedOk = 0;
      for (let i = 0; i < waiters; i++) {
        const answer = await coordinatorUnary<{ released: boolean }>(coordinator, 'Release', { name, lease: lease.ID, owner: `w${i}` });
        if (answer.released) releasedOk++;
      }
      const during = await figures('coordinator_acquire');
      expect(releasedOk).toBe(waiters);
      expect(await probe('bp/acquire', 5)).toBe(5);
      expect(during.paused).toBeGreaterThan(before.paused ?? 0);
      expect(during.peakBytes).toBeLessThanOrEqual(BOUND + 24 * 1024);
      unread.close();
      await released('coordinator_acquire', before.open ?? 0);
      await raw.unary('Lease', 'LeaseRevoke', { ID: lease.ID });
    } finally {
      coordinator.close();
    }
  });
});

// ---- a raw gavel.v1.Coordinator client ----

function coordinatorClient(endpoint: string): grpc.Client {
  const v1 = loadGrpc()['gavel'] as grpc.GrpcObject;
  const ctor = (v1['v1'] as grpc.GrpcObject)['Coordinator'] as grpc.ServiceClientConstructor;
  return new ctor(endpoint, grpc.credentials.createInsecure());
}

type UnaryFn = (request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: unknown) => void) => void;

function coordinatorUnary<T>(coordinator: grpc.Client, method: string, request: object): Promise<T> {
  const fn = (coordinator as unknown as Record<string, UnaryFn>)[method];
  if (fn === undefined) throw new Error(`no Coordinator.${method}`);
  return new Promise((resolve, reject) => {
    fn.call(coordinator, request, { deadline: Date.now() + 10_000 }, (error, response) => (error === null ? resolve(response as T) : reject(error)));
  });
}

/** Joins the queue and leaves the stream once told to WAIT: the place stays (a broken stream keeps it). */
function queueWaiter(coordinator: grpc.Client, request: object): Promise<void> {
  const acquire = (coordinator as unknown as Record<string, (request: object, options: grpc.CallOptions) => grpc.ClientReadableStream<{ wait?: object | null }>>)['Acquire'];
  if (acquire === undefined) throw new Error('no Coordinator.Acquire');
  const call = acquire.call(coordinator, request, { deadline: Date.now() + 10_000 });
  return new Promise((resolve, reject) => {
    call.on('error', (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) reject(error);
    });
    call.once('data', (response) => {
      if (response.wait === null || response.wait === undefined) reject(new Error(`expected WAIT, got ${JSON.stringify(response)}`));
      else resolve();
      call.cancel();
    });
  });
}
