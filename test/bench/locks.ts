/**
 * Benchmark (figures, never pass/fail): lock acquire+release cycles per second with 1 and 64
 * clients on locks of their own, and the contended hand-off latency (unlock → the next holder's
 * lock() returns) with 8 clients on one lock; for the client Mutex, the server's v3lock and the
 * coordinator queue (gavel.v1.Coordinator) on the member, and the coordinator of a
 * `gavel --mode central` process (started here unless --central-endpoint names one).
 *
 *   npm run bench:locks -- [--target gavel|etcd] [--endpoint host:port] [--central-endpoint host:port] [--duration SECONDS]
 */
import { cpus } from 'node:os';
import { Client, type Session } from '../../client/index.js';
import { parseFlags, positive, target } from './args.js';
import { withGrace, IN_FLIGHT_GRACE_MS } from './loop.js';
import { printTable, type Row } from './table.js';
import { startMember, stopAllMembers, type Target } from '../helpers/gavel.js';

interface Options {
  target: Target;
  endpoint: string | undefined;
  centralEndpoint: string | undefined;
  durationSeconds: number;
}

/** Connections shared by the workers (a real deployment has a few per process, not one per lock). */
const CONNECTIONS = 8;

type Cycle = (worker: number, session: Session, client: Client) => Promise<void>;

/** `clients` workers, each with its own session, repeating `cycle` for durationMs. */
async function cycles(name: string, endpoint: string, clients: number, durationMs: number, cycle: Cycle): Promise<Row> {
  const connections = Array.from({ length: Math.min(clients, CONNECTIONS) }, () => new Client({ endpoints: [endpoint] }));
  const sessions = await Promise.all(Array.from({ length: clients }, (_, i) => connections[i % connections.length]!.session({ ttlSeconds: 30 })));
  const row: Row = { name, clients, operations: 0, errors: 0, seconds: 0, latenciesMs: [] };
  const started = performance.now();
  const deadline = started + durationMs;
  const workers = sessions.map(async (session, worker) => {
    const client = connections[worker % connections.length]!;
    while (performance.now() < deadline) {
      const begin = performance.now();
      try {
        await cycle(worker, session, client);
        row.operations += 1;
        row.latenciesMs.push(performance.now() - begin);
      } catch (error) {
        if (row.errors === 0) process.stderr.write(`${name}: first error: ${error instanceof Error ? error.message : String(error)}\n`);
        row.errors += 1;
      }
    }
  });
  await withGrace(Promise.all(workers), durationMs + IN_FLIGHT_GRACE_MS);
  row.seconds = (performance.now() - started) / 1000;
  await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
  for (const c of connections) c.close();
  return row;
}

/**
 * 8 workers on one lock. Latency = from the moment the holder starts unlock() to the moment the
 * next holder's lock() returns (both in this process, one clock).
 */
async function handOff(name: string, endpoint: string, durationMs: number, lock: (session: Session, client: Client) => Promise<() => Promise<void>>): Promise<Row> {
  let releasedAt: number | undefined;
  const handOffsMs: number[] = [];
  const row = await cycles(name, endpoint, 8, durationMs, async (_worker, session, client) => {
    const unlock = await lock(session, client);
    const acquiredAt = performance.now();
    if (releasedAt !== undefined) handOffsMs.push(acquiredAt - releasedAt);
    releasedAt = performance.now();
    await unlock();
  });
  return { ...row, latenciesMs: handOffsMs };
}

/** Coordinator mutex rows: cycles with 1 and 64 clients on locks of their own, hand-off with 8 on one lock. */
async function coordinatorRows(label: string, endpoint: string, durationMs: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const clients of [1, 64]) {
    rows.push(
      await cycles(`${label} mutex lock+unlock, own locks`, endpoint, clients, durationMs, async (worker, session, client) => {
        const mutex = await client.coordinatorMutex(`bench/coord/${worker}`, { session }).lock();
        await mutex.unlock();
      }),
    );
  }
  rows.push(
    await handOff(`${label} hand-off, 8 on one lock`, endpoint, durationMs, async (session, client) => {
      const mutex = await client.coordinatorMutex('bench/coord-contended', { session }).lock();
      return () => mutex.unlock();
    }),
  );
  return rows;
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { target: 'gavel', endpoint: undefined, centralEndpoint: undefined, durationSeconds: 5 };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.target = target(value())),
      '--endpoint': (value) => (options.endpoint = value().replace(/^https?:\/\//, '')),
      '--central-endpoint': (value) => (options.centralEndpoint = value().replace(/^https?:\/\//, '')),
      '--duration': (value) => (options.durationSeconds = positive('--duration', value())),
    },
    'usage: node dist/test/bench/locks.js [--target gavel|etcd] [--endpoint host:port] [--central-endpoint host:port] [--duration SECONDS]',
  );
  return options;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  process.stdout.write(`command: ${process.argv.join(' ')}\nmachine: ${cpus().length} cores, node ${process.version}\n`);
  const endpoint = options.endpoint ?? (await startMember({ target: options.target, name: 'bench-locks' })).endpoint;
  process.stdout.write(`server: ${options.endpoint === undefined ? options.target : 'external'} at ${endpoint}; ${options.durationSeconds} s per measurement\n\n`);
  const durationMs = options.durationSeconds * 1000;
  const rows: Row[] = [];
  try {
    for (const clients of [1, 64]) {
      rows.push(
        await cycles('client Mutex lock+unlock, own locks', endpoint, clients, durationMs, async (worker, session, client) => {
          const mutex = await client.mutex(`bench/own/${worker}`, { session }).lock();
          await mutex.unlock();
        }),
      );
      rows.push(
        await cycles('v3lock Lock+Unlock, own locks', endpoint, clients, durationMs, async (worker, session, client) => {
          const held = await client.lockService.lock(`bench/v3own/${worker}`, { lease: session.leaseId });
          await client.lockService.unlock(held.key);
        }),
      );
    }
    const mutexHandOff = await handOff('client Mutex hand-off, 8 on one lock', endpoint, durationMs, async (session, client) => {
      const mutex = await client.mutex('bench/contended', { session }).lock();
      return () => mutex.unlock();
    });
    const v3HandOff = await handOff('v3lock hand-off, 8 on one lock', endpoint, durationMs, async (session, client) => {
      const held = await client.lockService.lock('bench/v3contended', { lease: session.leaseId });
      return async () => void (await client.lockService.unlock(held.key));
    });
    rows.push(mutexHandOff, v3HandOff);
    // The coordinator queue: etcd has no such service.
    if (options.target === 'gavel') rows.push(...(await coordinatorRows('coordinator', endpoint, durationMs)));
    if (options.target === 'gavel') {
      const central = options.centralEndpoint ?? (await startMember({ target: 'gavel', name: 'bench-central', args: ['--mode', 'central'] })).endpoint;
      process.stdout.write(`central: ${options.centralEndpoint === undefined ? 'gavel --mode central' : 'external'} at ${central}\n`);
      rows.push(...(await coordinatorRows('central coordinator', central, durationMs)));
    }
  } finally {
    await stopAllMembers();
  }
  printTable(rows);
  process.stdout.write('\nops/s: acquire+release cycles per second. Hand-off rows: p50/p99 are unlock → next holder acquired.\n');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void stopAllMembers().finally(() => process.exit(1));
  },
);
