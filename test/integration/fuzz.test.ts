/**
 * Hostile input: thousands of random and malformed requests against a running member — random
 * bytes as whole messages, random keys and values, empty and huge fields, invalid enums,
 * inverted ranges, huge limits, negative revisions, random watch and lease streams cancelled
 * abruptly, floods past the limits. Checked: the member never crashes, every request gets a
 * proper status, a rejected write changes nothing, memory stays bounded, and floods are refused
 * with ResourceExhausted or Unavailable.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDefinition } from '../../server/proto.js';
import { Prng } from '../sim/prng.js';
import { startMember, stopAllMembers, targetFromEnv, waitUntil, type Member } from '../helpers/gavel.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261123);
const REQUESTS = Number(process.env['FUZZ_REQUESTS'] ?? 4000);
const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_PENDING = 16;

/** Statuses a request may end in; anything else (Unknown, Internal from a handler) is a bug. */
const PROPER = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.OUT_OF_RANGE,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNAVAILABLE,
]);

type Method = 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact' | 'LeaseGrant' | 'LeaseRevoke' | 'LeaseTimeToLive';
const WRITES = new Set<Method>(['Put', 'DeleteRange', 'Txn', 'Compact', 'LeaseGrant', 'LeaseRevoke']);

let member: Member;
let raw: grpc.Client;

beforeAll(async () => {
  member = await startMember({ args: ['--max-request-bytes', String(MAX_REQUEST_BYTES), '--max-pending-proposals', String(MAX_PENDING), '--max-txn-ops', '8', '--max-concurrent-streams', '64'] });
  raw = new grpc.Client(member.endpoint, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
});

afterAll(async () => {
  raw.close();
  await stopAllMembers();
});

function definition(service: string, method: string): grpc.MethodDefinition<object, unknown> {
  return serviceDefinition(service)[method] as grpc.MethodDefinition<object, unknown>;
}

function serviceOf(method: Method): string {
  return method.startsWith('Lease') ? 'etcdserverpb.Lease' : 'etcdserverpb.KV';
}

/** A unary call whose request may be an object (encoded by the proto) or raw bytes (sent as is). */
function call(service: string, method: string, request: object | Buffer): Promise<{ code: number; details: string; response?: unknown }> {
  const d = definition(service, method);
  const serialize = Buffer.isBuffer(request) ? (b: Buffer) => b : (o: object) => d.requestSerialize(o);
  return new Promise((resolve) => {
    raw.makeUnaryRequest(d.path, serialize as (v: object | Buffer) => Buffer, d.responseDeserialize, request, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (error, response) =>
      resolve(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: '', response }),
    );
  });
}

class Generator {
  constructor(readonly rng: Prng) {}

  bytes(max: number): Buffer {
    const length = this.rng.chance(0.1) ? 0 : this.rng.int(max + 1);
    return Buffer.from(Array.from({ length }, () => this.rng.int(256)));
  }

  /** Keys under fuzz/ mostly, so reads and deletes meet what writes created; sometimes anything. */
  key(): Buffer {
    if (this.rng.chance(0.15)) return this.bytes(40);
    return Buffer.concat([Buffer.from('fuzz/'), this.bytes(6)]);
  }

  /**
   * A lease TTL: int64()'s edge values, but no valid TTL short enough to end during the run. A
   * lease that expired mid-run deleted the keys a random Put had attached to it, and that change
   * was blamed on whichever rejected write was being checked at that moment.
   */
  ttl(): string {
    const ttl = this.int64();
    const seconds = Number(ttl);
    return seconds > 0 && seconds < 600 ? String(600 + seconds) : ttl;
  }

  int64(): string {
    switch (this.rng.int(6)) {
      case 0:
        return '0';
      case 1:
        return String(-1 - this.rng.int(1000));
      case 2:
        return '9223372036854775807';
      case 3:
        return '-9223372036854775808';
      default:
        return String(this.rng.int(5000));
    }
  }

  pick<T>(items: readonly T[]): T {
    return items[this.rng.int(items.length)] as T;
  }

  range(): object {
    return {
      key: this.key(),
      range_end: this.rng.chance(0.5) ? this.key() : this.rng.chance(0.3) ? Buffer.from([0]) : Buffer.alloc(0),
      limit: this.int64(),
      revision: this.int64(),
      sort_order: this.rng.int(5),
      sort_target: this.rng.int(7),
      serializable: this.rng.chance(0.3),
      keys_only: this.rng.chance(0.2),
      count_only: this.rng.chance(0.2),
      min_mod_revision: this.int64(),
      max_mod_revision: this.int64(),
      min_create_revision: this.int64(),
      max_create_revision: this.int64(),
    };
  }

  put(): object {
    const huge = this.rng.chance(0.03);
    return {
      key: this.rng.chance(0.05) ? Buffer.alloc(0) : this.key(),
      value: huge ? Buffer.alloc(MAX_REQUEST_BYTES + this.rng.int(MAX_REQUEST_BYTES), 1) : this.bytes(200),
      lease: this.rng.chance(0.8) ? '0' : this.int64(),
      prev_kv: this.rng.chance(0.5),
      ignore_value: this.rng.chance(0.1),
      ignore_lease: this.rng.chance(0.1),
    };
  }

  op(depth: number): object {
    switch (this.rng.int(depth > 1 ? 3 : 4)) {
      case 0:
        return { request_range: this.range() };
      case 1:
        return { request_put: this.put() };
      case 2:
        return { request_delete_range: { key: this.key(), range_end: this.rng.chance(0.5) ? this.key() : Buffer.alloc(0), prev_kv: this.rng.chance(0.5) } };
      default:
        return { request_txn: this.txn(depth + 1) };
    }
  }

  txn(depth = 0): object {
    const compare = Array.from({ length: this.rng.int(4) }, () => {
      const target = this.rng.int(6);
      const field = this.pick(['version', 'create_revision', 'mod_revision', 'value', 'lease'] as const);
      return { result: this.rng.int(6), target, key: this.key(), range_end: this.rng.chance(0.3) ? this.key() : Buffer.alloc(0), [field]: field === 'value' ? this.bytes(10) : this.int64() };
    });
    const ops = (): object[] => Array.from({ length: this.rng.int(10) }, () => this.op(depth));
    return { compare, success: ops(), failure: ops() };
  }

  request(method: Method): object | Buffer {
    if (this.rng.chance(0.08)) return this.bytes(100); // arbitrary bytes as the whole message
    switch (method) {
      case 'Range':
        return this.range();
      case 'Put':
        return this.put();
      case 'DeleteRange':
        return { key: this.key(), range_end: this.rng.chance(0.5) ? this.key() : Buffer.alloc(0), prev_kv: this.rng.chance(0.5) };
      case 'Txn':
        return this.txn();
      case 'Compact':
        return { revision: this.int64(), physical: this.rng.chance(0.5) };
      case 'LeaseGrant':
        return { TTL: this.ttl(), ID: this.rng.chance(0.7) ? '0' : this.int64() };
      case 'LeaseRevoke':
      case 'LeaseTimeToLive':
        return { ID: this.int64(), keys: this.rng.chance(0.5) };
    }
  }
}

async function currentRevision(): Promise<string> {
  const r = await call('etcdserverpb.KV', 'Range', { key: Buffer.from('fuzz-probe'), serializable: false });
  expect(r.code).toBe(grpc.status.OK);
  return (r.response as { header: { revision: string } }).header.revision;
}

async function residentBytes(): Promise<number> {
  return Number(/^\d+ (\d+)/.exec(await import('node:fs').then((fs) => fs.promises.readFile(`/proc/${member.pid}/statm`, 'utf8')))?.[1] ?? 0) * 4096;
}

describe.skipIf(targetFromEnv() === 'etcd')('hostile input', () => {
  it(`answers ${REQUESTS} random and malformed requests with proper statuses, and rejected writes change nothing (seed ${SEED})`, async () => {
    const gen = new Generator(new Prng(SEED));
    const methods: Method[] = ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact', 'LeaseGrant', 'LeaseRevoke', 'LeaseTimeToLive'];
    const statuses = new Map<string, number>();
    const improper: string[] = [];
    const rssBefore = await residentBytes();
    for (let i = 0; i < REQUESTS; i++) {
      const method = gen.pick(methods);
      const request = gen.request(method);
      const before = WRITES.has(method) ? await currentRevision() : undefined;
      const result = await call(serviceOf(method), method, request);
      const label = `${method} ${grpc.status[result.code]}`;
      statuses.set(label, (statuses.get(label) ?? 0) + 1);
      // Undecodable bytes are refused by the gRPC layer itself (Internal "Error deserializing request").
      const decodeRefusal = result.code === grpc.status.INTERNAL && /deserializ/i.test(result.details) && Buffer.isBuffer(request);
      if (!PROPER.has(result.code) && !decodeRefusal) improper.push(`${label}: ${result.details}`);
      if (before !== undefined && result.code !== grpc.status.OK && result.code !== grpc.status.UNAVAILABLE) {
        expect(await currentRevision(), `${label} (${result.details}) changed the store`).toBe(before);
      }
    }
    expect(improper).toEqual([]);
    expect(member.running).toBe(true);
    const rssAfter = await residentBytes();
    process.stdout.write(`fuzz: seed ${SEED}, ${REQUESTS} requests; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}; rss ${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssAfter / 2 ** 20).toFixed(0)} MiB\n`);
    expect(rssAfter).toBeLessThan(rssBefore + 256 * 2 ** 20);
  }, 300_000);

  it('survives random watch and keep-alive streams cancelled abruptly', async () => {
    const gen = new Generator(new Prng(SEED + 1));
    const watch = definition('etcdserverpb.Watch', 'Watch');
    const keepAlive = definition('etcdserverpb.Lease', 'LeaseKeepAlive');
    // A fresh connection per 25 streams: Node's HTTP/2 server (nghttp2's rapid-reset guard)
    // cuts a connection that resets streams faster than it allows, which is a defence, not a failure.
    let connection = new grpc.Client(member.endpoint, grpc.credentials.createInsecure());
    for (let round = 0; round < 200; round++) {
      if (round % 25 === 0) {
        connection.close();
        connection = new grpc.Client(member.endpoint, grpc.credentials.createInsecure());
      }
      const d = gen.pick([watch, keepAlive]);
      const stream = connection.makeBidiStreamRequest(d.path, (o: object | Buffer) => (Buffer.isBuffer(o) ? o : d.requestSerialize(o)), d.responseDeserialize, new grpc.Metadata(), {});
      stream.on('error', () => undefined);
      stream.on('data', () => undefined);
      for (let n = gen.pick([1, 2, 5]); n > 0; n--) {
        if (d === watch) {
          const create = { create_request: { key: gen.key(), range_end: gen.rng.chance(0.5) ? gen.key() : Buffer.alloc(0), start_revision: gen.int64(), filters: [gen.rng.int(4)], prev_kv: true, watch_id: gen.int64(), progress_notify: true, fragment: gen.rng.chance(0.5) } };
          stream.write(gen.rng.chance(0.1) ? gen.bytes(50) : gen.rng.chance(0.2) ? { cancel_request: { watch_id: gen.int64() } } : create);
        } else {
          stream.write(gen.rng.chance(0.1) ? gen.bytes(30) : { ID: gen.int64() });
        }
      }
      if (gen.rng.chance(0.5)) await new Promise((r) => setTimeout(r, gen.rng.int(5)));
      stream.cancel();
    }
    connection.close();
    const after = await call('etcdserverpb.KV', 'Put', { key: Buffer.from('after-streams'), value: Buffer.from('ok') });
    expect(after.code, `${after.details}\n${member.logs().split('\n').slice(-15).join('\n')}`).toBe(grpc.status.OK);
    expect(member.running).toBe(true);
  }, 120_000);

  it('refuses floods with ResourceExhausted or Unavailable: pending proposals, streams per connection', async () => {
    // 400 writes at once against --max-pending-proposals 16.
    const results = await Promise.all(Array.from({ length: 400 }, (_, i) => call('etcdserverpb.KV', 'Put', { key: Buffer.from(`flood/${i}`), value: Buffer.alloc(100) })));
    const codes = new Set(results.map((r) => r.code));
    expect([...codes].every((c) => c === grpc.status.OK || c === grpc.status.RESOURCE_EXHAUSTED || c === grpc.status.UNAVAILABLE)).toBe(true);
    expect(codes.has(grpc.status.RESOURCE_EXHAUSTED)).toBe(true);

    // More streams than --max-concurrent-streams 64 on one connection: the surplus waits or is refused; the member serves on.
    const watch = definition('etcdserverpb.Watch', 'Watch');
    const flood = new grpc.Client(member.endpoint, grpc.credentials.createInsecure());
    const streams = Array.from({ length: 300 }, () => {
      const s = flood.makeBidiStreamRequest(watch.path, watch.requestSerialize, watch.responseDeserialize, new grpc.Metadata(), { deadline: Date.now() + 3_000 });
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      s.write({ create_request: { key: Buffer.from('flood/'), range_end: Buffer.from('flood0') } });
      return s;
    });
    await waitUntil('member still answers', async () => ((await call('etcdserverpb.KV', 'Range', { key: Buffer.from('flood/0') })).code === grpc.status.OK ? true : undefined), 10_000, 100);
    for (const s of streams) s.cancel();
    flood.close();
    expect(member.running).toBe(true);
  }, 120_000);
});
