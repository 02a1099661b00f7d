/**
 * Measurement (not a test; figures, never pass/fail) of issue #19's scenario: one member, one
 * LeaseKeepAlive stream whose client sends keep-alives as fast as it can and never reads the
 * answers. Reports the member's resident memory (peak, and some seconds after the client went
 * away), how many keep-alives got through HTTP/2 flow control (a member that stops reading
 * stops this count), and a probe client's put+get every 0.5 s (failures, slowest).
 *
 *   node dist/test/bench/unread-stream.js [--target gavel|etcd] [--duration SECONDS] [--settle SECONDS]
 */
import { readFileSync } from 'node:fs';
import { connect, constants } from 'node:http2';
import { messageCodec } from '../../server/proto.js';
import { parseFlags, positive, target } from './args.js';
import { startMember, stopAllMembers, type Target } from '../helpers/gavel.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';

interface Options {
  target: Target;
  durationSeconds: number;
  settleSeconds: number;
}

const PROBE_INTERVAL_MS = 500;
const PROBE_DEADLINE_MS = 5_000;
const FRAMES_PER_WRITE = 1_000;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { target: 'gavel', durationSeconds: 30, settleSeconds: 10 };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.target = target(value())),
      '--duration': (value) => (options.durationSeconds = positive('--duration', value())),
      '--settle': (value) => (options.settleSeconds = positive('--settle', value())),
    },
    'usage: node dist/test/bench/unread-stream.js [--target gavel|etcd] [--duration SECONDS] [--settle SECONDS]',
  );
  return options;
}

/** Resident memory of a process in MB, from /proc (Linux). */
function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Writes keep-alives over a raw HTTP/2 stream until `until` has passed, many gRPC frames per
 * DATA write (a fast sender, as a Go client would be), waiting for 'drain' when write() says so.
 * It never reads: no 'data' listener, so HTTP/2 flow control is all that slows the member down.
 */
async function flood(endpoint: string, id: string, until: number): Promise<{ sent: number; close(): void }> {
  const body = messageCodec<{ ID: string }>('etcdserverpb.LeaseKeepAliveRequest').encode({ ID: id });
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  const chunk = Buffer.concat(Array.from({ length: FRAMES_PER_WRITE }, () => frame));
  const session = connect(`http://${endpoint}`);
  session.on('error', () => undefined);
  const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Lease/LeaseKeepAlive', 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined);
  const counts = { sent: 0 };
  const close = (): void => {
    stream.close(constants.NGHTTP2_CANCEL);
    session.close();
  };
  while (Date.now() < until && !stream.destroyed) {
    const room = stream.write(chunk, (error) => {
      if (error === null || error === undefined) counts.sent += FRAMES_PER_WRITE;
    });
    if (room) {
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    // Blocked: wait for 'drain' or the end of the run, whichever comes first.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, until - Date.now()));
      function done(): void {
        clearTimeout(timer);
        stream.removeListener('drain', done);
        resolve();
      }
      stream.once('drain', done);
    });
  }
  return { sent: counts.sent, close };
}

/** put + get every PROBE_INTERVAL_MS until `until`; one at a time, each with a deadline. */
async function probe(client: EtcdGrpcClient, until: number): Promise<{ attempts: number; failures: number; slowestMs: number }> {
  const result = { attempts: 0, failures: 0, slowestMs: 0 };
  while (Date.now() < until) {
    const started = performance.now();
    result.attempts++;
    try {
      await client.unary('KV', 'Put', { key: Buffer.from('probe'), value: Buffer.from(String(result.attempts)) }, PROBE_DEADLINE_MS);
      await client.unary('KV', 'Range', { key: Buffer.from('probe') }, PROBE_DEADLINE_MS);
    } catch {
      result.failures++;
    }
    result.slowestMs = Math.max(result.slowestMs, performance.now() - started);
    await sleep(PROBE_INTERVAL_MS);
  }
  return result;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const member = await startMember({ target: options.target, name: 'unread' });
  try {
    const client = new EtcdGrpcClient(member.endpoint);
    const lease = await client.unary<{ ID: string }>('Lease', 'LeaseGrant', { TTL: 600 });
    await sleep(1_000);
    const rssStart = rssMb(member.pid);
    let rssPeak = rssStart;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(member.pid))), 250);
    const until = Date.now() + options.durationSeconds * 1000;
    const [counts, probes] = await Promise.all([flood(member.endpoint, lease.ID, until), probe(client, until)]);
    const rssEnd = rssMb(member.pid);
    counts.close();
    await sleep(options.settleSeconds * 1000);
    clearInterval(sampler);
    const rssAfter = rssMb(member.pid);
    client.close();
    const lines = [
      `target ${options.target}, ${options.durationSeconds} s of one LeaseKeepAlive stream that never reads`,
      `keep-alives the member took in         ${counts.sent} (sent past HTTP/2 flow control)`,
      `member RSS before / peak / at end      ${rssStart.toFixed(0)} / ${rssPeak.toFixed(0)} / ${rssEnd.toFixed(0)} MB`,
      `member RSS ${options.settleSeconds} s after the disconnect   ${rssAfter.toFixed(0)} MB`,
      `probe put+get every ${PROBE_INTERVAL_MS} ms              ${probes.attempts - probes.failures}/${probes.attempts} ok, slowest ${probes.slowestMs.toFixed(0)} ms`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stopAllMembers();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
