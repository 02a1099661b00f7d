/**
 * Benchmark (not a test; figures, never pass/fail): put and range throughput and latency with 1
 * and 64 concurrent clients, and lease keep-alive throughput over one KeepAlive stream.
 *
 *   npm run bench -- [--target gavel|etcd] [--endpoint host:port] [--duration SECONDS] [--value-bytes N]
 *
 * By default it starts a gavel member on a temp data dir (`--target etcd` starts a real etcd for
 * comparison; `--endpoint` measures an external one). Each measurement runs for --duration
 * seconds (default 5) and then waits, bounded, for the requests still in flight.
 */
import { IN_FLIGHT_GRACE_MS, runClosedLoop, withGrace, type Operation } from './loop.js';
import { parseFlags, positive, target } from './args.js';
import { printTable, type Row } from './table.js';
import { cpus, totalmem, platform, release } from 'node:os';
import { startMember, stopAllMembers, type Member, type Target } from '../helpers/gavel.js';
import { EtcdGrpcClient, type LeaseKeepAliveResponse } from '../helpers/grpc.js';

interface Options {
  target: Target;
  endpoint: string | undefined;
  durationSeconds: number;
  valueBytes: number;
}


const KEEPALIVE_WINDOW = 64;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { target: 'gavel', endpoint: undefined, durationSeconds: 5, valueBytes: 256 };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.target = target(value())),
      '--endpoint': (value) => (options.endpoint = value().replace(/^https?:\/\//, '')),
      '--duration': (value) => (options.durationSeconds = positive('--duration', value())),
      '--value-bytes': (value) => (options.valueBytes = positive('--value-bytes', value())),
    },
    'usage: node dist/test/bench/run.js [--target gavel|etcd] [--endpoint host:port] [--duration SECONDS] [--value-bytes N]',
  );
  return options;
}


/** Runs `operation` in `clients` closed loops for durationMs; in-flight requests get a bounded grace. */
async function closedLoop(name: string, endpoint: string, clients: number, durationMs: number, operation: Operation): Promise<Row> {
  const channels = Array.from({ length: clients }, () => new EtcdGrpcClient(endpoint));
  return { name, clients, ...(await runClosedLoop(channels, clients, durationMs, operation)) };
}

/** Keep-alive messages per second over one stream, with KEEPALIVE_WINDOW requests outstanding. */
async function keepAliveThroughput(endpoint: string, durationMs: number): Promise<Row> {
  const client = new EtcdGrpcClient(endpoint);
  const lease = await client.unary<{ ID: string }>('Lease', 'LeaseGrant', { TTL: 60 });
  const row: Row = { name: `lease keep-alive (1 stream, ${KEEPALIVE_WINDOW} in flight)`, clients: 1, operations: 0, errors: 0, seconds: 0, latenciesMs: [] };
  const stream = client.duplex('Lease', 'LeaseKeepAlive');
  const sentAt: number[] = [];
  let finished = false;
  const started = performance.now();
  const deadline = started + durationMs;
  await withGrace(
    new Promise<void>((resolve) => {
      const send = (): void => {
        sentAt.push(performance.now());
        stream.write({ ID: lease.ID });
      };
      stream.on('data', (response: LeaseKeepAliveResponse) => {
        const sent = sentAt.shift();
        if (sent !== undefined) row.latenciesMs.push(performance.now() - sent);
        if (response.TTL === '0') row.errors += 1;
        else row.operations += 1;
        if (performance.now() < deadline) send();
        else if (sentAt.length === 0) resolve();
      });
      stream.on('error', () => {
        if (!finished) row.errors += 1; // cancel() at the end also surfaces here
        resolve();
      });
      for (let index = 0; index < KEEPALIVE_WINDOW; index += 1) send();
    }),
    durationMs + IN_FLIGHT_GRACE_MS,
  );
  row.seconds = (performance.now() - started) / 1000;
  finished = true;
  stream.cancel();
  await client.unary('Lease', 'LeaseRevoke', { ID: lease.ID }).catch(() => undefined);
  client.close();
  return row;
}


async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const cpuList = cpus();
  process.stdout.write(`command: ${process.argv.map((arg) => (/\s/.test(arg) ? JSON.stringify(arg) : arg)).join(' ')}\n`);
  process.stdout.write(`machine: ${cpuList.length} cores (${cpuList[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${platform()} ${release()}, node ${process.version}\n`);

  let member: Member | undefined;
  let endpoint = options.endpoint;
  if (endpoint === undefined) {
    member = await startMember({ target: options.target, name: 'bench' });
    endpoint = member.endpoint;
  }
  process.stdout.write(`server: ${options.endpoint === undefined ? options.target : 'external'} at ${endpoint}; ${options.durationSeconds} s per measurement; ${options.valueBytes}-byte values\n\n`);

  const durationMs = options.durationSeconds * 1000;
  const value = Buffer.alloc(options.valueBytes, 'v');
  const rows: Row[] = [];
  try {
    for (const clients of [1, 64]) {
      rows.push(await closedLoop('put', endpoint, clients, durationMs, (client, worker, sequence) =>
        client.unary('KV', 'Put', { key: Buffer.from(`bench/put/${worker}/${sequence % 1000}`), value })));
    }
    const seed = new EtcdGrpcClient(endpoint);
    await seed.unary('KV', 'Put', { key: Buffer.from('bench/range'), value });
    seed.close();
    for (const clients of [1, 64]) {
      rows.push(await closedLoop('range (linearizable)', endpoint, clients, durationMs, (client) =>
        client.unary('KV', 'Range', { key: Buffer.from('bench/range') })));
    }
    rows.push(await keepAliveThroughput(endpoint, durationMs));
  } finally {
    await stopAllMembers();
  }
  printTable(rows);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    void stopAllMembers().finally(() => process.exit(1));
  },
);
