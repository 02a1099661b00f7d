/**
 * Loads data into a member over the public gRPC API, the only way into etcd (and the way a
 * gavel member is filled in production): many requests in flight over a few connections, each
 * with a deadline and a bounded number of retries. Keys and value sizes match
 * test/helpers/history.ts (historyKey, incompressible values), so a member loaded here holds the
 * same data as one loaded offline.
 *
 * - loadKeys: `keys` keys written once each, `putsPerTxn` puts per Txn (one revision per Txn;
 *   1 = plain Puts). The number of key versions is the same either way.
 * - loadHistory: `revisions` plain Puts round-robin over `keys` keys, one revision each, and with
 *   `compaction` a Compact to (newest revision - retain) every `everyRevisions` revisions, one at a
 *   time, in the background of the puts (as auto-compaction runs beside the traffic).
 */
import { randomBytes } from 'node:crypto';
import { historyKey } from '../helpers/history.js';
import { EtcdGrpcClient, isServiceError, type PutResponse } from '../helpers/grpc.js';
import { sleep } from './process-stats.js';

export interface LoadShape {
  /** gRPC connections; default 8. */
  readonly connections?: number;
  /** Requests in flight over all connections; default 128. */
  readonly inFlight?: number;
  /** Called about every 5% with the items done. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface LoadResult {
  readonly seconds: number;
  /** The newest revision a response reported. */
  readonly lastRevision: number;
  readonly compactions: number;
}

const DEADLINE_MS = 60_000;
const COMPACT_DEADLINE_MS = 300_000;
const ATTEMPTS = 5;

interface Loop {
  readonly total: number;
  /** Sends item number `item` (0-based); resolves with the revision its answer reported. */
  send(client: EtcdGrpcClient, item: number): Promise<number>;
  /** After each item: the revision reached and the items done. */
  after?(revision: number, done: number): void;
}

/** `keys` keys written once each, `putsPerTxn` per request. */
export async function loadKeys(endpoint: string, options: { keys: number; valueBytes: number; putsPerTxn: number }, shape: LoadShape = {}): Promise<LoadResult> {
  const values = new NoiseValues(options.valueBytes);
  const requests = Math.ceil(options.keys / options.putsPerTxn);
  return runLoop(endpoint, shape, {
    total: requests,
    async send(client, item) {
      const first = item * options.putsPerTxn;
      const last = Math.min(options.keys, first + options.putsPerTxn);
      if (options.putsPerTxn === 1) return revisionOf(await client.unary<PutResponse>('KV', 'Put', { key: Buffer.from(historyKey(first)), value: values.at(first) }, DEADLINE_MS));
      const success = [];
      for (let key = first; key < last; key += 1) success.push({ request_put: { key: Buffer.from(historyKey(key)), value: values.at(key) } });
      return revisionOf(await client.unary<PutResponse>('KV', 'Txn', { compare: [], success, failure: [] }, DEADLINE_MS));
    },
  });
}

/** `revisions` puts over `keys` keys, compacted along the way when asked. */
export async function loadHistory(
  endpoint: string,
  options: { revisions: number; keys: number; valueBytes: number; compaction?: { everyRevisions: number; retainRevisions: number } },
  shape: LoadShape = {},
): Promise<LoadResult> {
  const values = new NoiseValues(options.valueBytes);
  const compactor = options.compaction === undefined ? undefined : new BackgroundCompactor(endpoint, options.compaction.everyRevisions, options.compaction.retainRevisions);
  try {
    const result = await runLoop(endpoint, shape, {
      total: options.revisions,
      send: async (client, item) => revisionOf(await client.unary<PutResponse>('KV', 'Put', { key: Buffer.from(historyKey(item % options.keys)), value: values.at(item) }, DEADLINE_MS)),
      after: (revision) => compactor?.observe(revision),
    });
    return { ...result, compactions: (await compactor?.finish()) ?? 0 };
  } finally {
    compactor?.close();
  }
}

/** Workers pull item numbers from one counter; each item is retried at most ATTEMPTS times. */
async function runLoop(endpoint: string, shape: LoadShape, loop: Loop): Promise<LoadResult> {
  const clients = Array.from({ length: shape.connections ?? 8 }, () => new EtcdGrpcClient(endpoint));
  const started = performance.now();
  let next = 0;
  let done = 0;
  let lastRevision = 0;
  const step = Math.max(1, Math.floor(loop.total / 20));
  const worker = async (client: EtcdGrpcClient): Promise<void> => {
    try {
      while (next < loop.total) {
        const item = next++;
        const revision = await withRetries(() => loop.send(client, item));
        lastRevision = Math.max(lastRevision, revision);
        done += 1;
        loop.after?.(lastRevision, done);
        if (done % step === 0) shape.onProgress?.(done, loop.total);
      }
    } catch (error) {
      next = loop.total; // the other workers stop after their request in flight
      throw error;
    }
  };
  try {
    await Promise.all(Array.from({ length: shape.inFlight ?? 128 }, (_, index) => worker(clients[index % clients.length] as EtcdGrpcClient)));
  } finally {
    for (const client of clients) client.close();
  }
  return { seconds: (performance.now() - started) / 1000, lastRevision, compactions: 0 };
}

async function withRetries<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= ATTEMPTS) throw error;
      await sleep(100 * 2 ** attempt);
    }
  }
}

function revisionOf(response: { header?: { revision?: string } | null }): number {
  return Number(response.header?.revision ?? 0);
}

/** Slices of one incompressible buffer, as test/helpers/history.ts writes them. */
class NoiseValues {
  private readonly noise = randomBytes(1 << 20);
  constructor(private readonly valueBytes: number) {}
  at(item: number): Buffer {
    const start = (item * 7919) % (this.noise.length - this.valueBytes);
    return this.noise.subarray(start, start + this.valueBytes);
  }
}

/** One Compact at a time to (newest - retain), whenever everyRevisions revisions passed since the last. */
class BackgroundCompactor {
  private readonly client: EtcdGrpcClient;
  private compactedTo = 0;
  private running: Promise<void> | undefined;
  private count = 0;
  private failure: unknown;

  constructor(endpoint: string, private readonly everyRevisions: number, private readonly retainRevisions: number) {
    this.client = new EtcdGrpcClient(endpoint);
  }

  observe(revision: number): void {
    if (this.failure !== undefined) throw this.failure;
    const target = revision - this.retainRevisions;
    if (this.running !== undefined || target - this.compactedTo < this.everyRevisions) return;
    this.running = this.compact(target).finally(() => (this.running = undefined));
  }

  private async compact(target: number): Promise<void> {
    try {
      await this.client.unary('KV', 'Compact', { revision: target, physical: false }, COMPACT_DEADLINE_MS);
      this.count += 1;
    } catch (error) {
      // The member's own auto-compaction may have gone further already.
      if (!(isServiceError(error) && error.details.includes('required revision has been compacted'))) this.failure = error;
    }
    this.compactedTo = target;
  }

  /** Waits for the compaction under way; resolves with the number done. */
  async finish(): Promise<number> {
    await this.running;
    if (this.failure !== undefined) throw this.failure;
    return this.count;
  }

  close(): void {
    this.client.close();
  }
}
