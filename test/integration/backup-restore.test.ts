/**
 * Backups and restore (issue #13 item 4) with real processes and the real etcdctl 3.4:
 * `etcdctl snapshot save` against a gavel member, `gavel snapshot restore` into the data dirs of
 * a NEW cluster, which then serves the same keys, revisions, leases, users and coordinator queues;
 * damaged files are refused with nothing written; a backup taken under concurrent writes is one
 * consistent point in the history; a client that does not read the stream cannot make the member
 * buffer the backup.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, op, type KeyValue } from '../../client/index.js';
import { etcdctl, repoRoot, startMember, stopAllMembers, trackChildProcess, trackTempDir, waitUntil, type Member } from '../helpers/gavel.js';
import { startCluster, stopAllClusters, type Cluster, type ClusterPlan } from '../helpers/cluster.js';
import { grpcFrame, metricsUrl, scrape, streamFigures, UnreadStream } from '../helpers/unread.js';
import { DEFAULT_MAX_BUFFERED_BYTES } from '../../server/api/stream-output.js';
import { SNAPSHOT_BLOB_BYTES } from '../../server/api/snapshot.js';

const GAVEL_MAIN = join(repoRoot(), 'dist', 'server', 'main.js');
const COMMAND_TIMEOUT_MS = 20_000;

let source: Member;
let client: Client;
let work: string;

beforeAll(async () => {
  // Always gavel, also under GAVEL_TARGET=etcd: what is tested is gavel's backup and restore.
  source = await startMember({ name: 'src', target: 'gavel' });
  client = new Client({ endpoints: [source.endpoint] });
  work = mkdtempSync(join(tmpdir(), 'gavel-backup-'));
  trackTempDir(work);
});

afterAll(async () => {
  client.close();
  await stopAllClusters();
  await stopAllMembers();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `gavel ARGS...` (the snapshot subcommands), bounded. */
function gavel(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [GAVEL_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChildProcess(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function saveBackup(endpoint: string, path: string, flags: readonly string[] = []): Promise<void> {
  const result = await etcdctl(endpoint, [...flags, 'snapshot', 'save', path], { timeoutMs: COMMAND_TIMEOUT_MS });
  expect(result.stdout + result.stderr, 'etcdctl snapshot save').toContain(`Snapshot saved at ${path}`);
  expect(result.code).toBe(0);
}

/** ClusterOptions.prepare: `gavel snapshot restore FILE` into every member's data dir, with the new cluster's flags. */
function restoreInto(file: string): (plan: ClusterPlan) => Promise<void> {
  return async (plan) => {
    for (const member of plan.members) {
      const run = await gavel([
        'snapshot', 'restore', file,
        '--name', member.name,
        '--initial-cluster', plan.initialCluster,
        '--initial-cluster-token', plan.token,
        '--initial-advertise-peer-urls', member.peerUrl,
        '--data-dir', member.dataDir,
      ]);
      expect(run.stderr, `restore ${member.name}`).toBe('');
      expect(run.code).toBe(0);
    }
  };
}

function describeKv(kv: KeyValue): string {
  return `${kv.key.toString()}=${kv.value.toString()} create=${kv.createRevision} mod=${kv.modRevision} version=${kv.version} lease=${kv.lease}`;
}

/** `etcdctl endpoint hashkv --rev R` of each endpoint, as "endpoint, hash" lines → hashes. */
async function hashes(endpoints: readonly string[], revision: bigint): Promise<string[]> {
  const result = await etcdctl(endpoints.join(','), ['endpoint', 'hashkv', '--rev', String(revision)]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim().split('\n').map((line) => line.split(', ')[1] ?? '');
}

describe('etcdctl snapshot save, then gavel snapshot restore into a new 3-member cluster', () => {
  let cluster: Cluster;
  let backup: string;
  let revision: bigint;
  let sourceKvs: string[];
  const leases: bigint[] = [];

  it('saves a backup that etcdctl accepts and gavel snapshot status reads', async () => {
    for (let i = 0; i < 3; i++) await client.kv.put('k/a', `a${i}`);
    await client.kv.put('k/b', 'b');
    await client.kv.put('k/gone', 'x');
    await client.kv.delete('k/gone');
    const compactAt = (await client.kv.put('k/c', 'c')).header.revision;
    await client.kv.compact(compactAt);
    await client.kv.put('k/a', 'a-after-compaction');
    const lease = await client.lease.grant(120);
    leases.push(lease.id);
    await client.kv.put('k/leased', 'l', { lease: lease.id });
    expect((await etcdctl(source.endpoint, ['user', 'add', 'alice:secret'])).stdout).toBe('User alice created\n');
    // A coordinator queue: one holder, one waiter (the waiter's request stays pending).
    const holder = await client.session({ ttlSeconds: 120 });
    const waiter = await client.session({ ttlSeconds: 120 });
    leases.push(holder.leaseId, waiter.leaseId);
    await client.coordinatorMutex('q', { session: holder }).lock();
    void client.coordinatorMutex('q', { session: waiter }).lock().catch(() => undefined);
    await expect.poll(async () => (await client.coordinator.describe('q')).waiters.length, { timeout: 5_000 }).toBe(1);

    const all = await client.kv.get('k/', { prefix: true });
    revision = all.header.revision;
    sourceKvs = all.kvs.map(describeKv);
    backup = join(work, 'backup.db');
    await saveBackup(source.endpoint, backup);
    // etcdctl only keeps a file of whole 512-byte pages plus the 32-byte digest.
    expect(statSync(backup).size % 512).toBe(32);
    const status = await gavel(['snapshot', 'status', backup, '-w', 'json']);
    expect(status.code, status.stderr).toBe(0);
    const summary = JSON.parse(status.stdout) as { revision: number; compactRevision: number; leases: number; totalSize: number };
    expect(summary).toMatchObject({ revision: Number(revision), compactRevision: Number(compactAt), leases: 3, totalSize: statSync(backup).size });
    const value = await scrape(metricsUrl(source));
    expect(value('etcd_disk_backend_snapshot_duration_seconds_count')).toBe(1);
  });

  it('restores into a new cluster with the same keys, revisions, leases, users and queue, and fresh ids', async () => {
    cluster = await startCluster({ members: 3, target: 'gavel', prepare: restoreInto(backup) });
    const sourceCluster = (await client.kv.get('k/b')).header.clusterId;
    for (const member of cluster.members) {
      const each = new Client({ endpoints: [member.endpoint] });
      try {
        const all = await each.kv.get('k/', { prefix: true, serializable: true });
        expect(all.kvs.map(describeKv), member.name).toEqual(sourceKvs);
        expect(all.header.revision).toBe(revision);
        expect(all.header.clusterId).not.toBe(sourceCluster);
      } finally {
        each.close();
      }
    }
    // HashKV at the backup's revision: the same on every new member as on the source.
    const endpoints = [source.endpoint, ...cluster.members.map((m) => m.endpoint)];
    expect(new Set(await hashes(endpoints, revision)).size).toBe(1);
    const members = await cluster.ctl(['member', 'list']);
    expect(members.split('\n').filter((line) => line.length > 0).map((line) => line.split(', ')[2]).sort()).toEqual(['n1', 'n2', 'n3']);
  });

  it('the restored cluster keeps the compaction point, leases, users and the coordinator queue, and takes writes', async () => {
    const restored = new Client({ endpoints: cluster.members.map((m) => m.endpoint) });
    try {
      await expect(restored.kv.get('k/a', { revision: 2n })).rejects.toThrow(/compacted/);
      for (const id of leases) {
        const ttl = await restored.lease.timeToLive(id);
        expect(ttl.grantedTtlSeconds).toBe(120);
        expect(ttl.ttlSeconds).toBeGreaterThan(100);
      }
      expect(await cluster.ctl(['user', 'list'])).toBe('alice\n');
      const queue = await restored.coordinator.describe('q');
      expect(queue.holders.map((h) => h.lease)).toEqual([leases[1]]);
      expect(queue.waiters.map((w) => w.lease)).toEqual([leases[2]]);
      const put = await restored.kv.put('k/new', 'n');
      expect(put.header.revision).toBe(revision + 1n);
    } finally {
      restored.close();
    }
  });

  it('under auth, only root may take a backup (as etcd)', async () => {
    const via = cluster.members[0]!;
    await cluster.ctl(['user', 'add', 'root:rootpw'], { via });
    await cluster.ctl(['auth', 'enable'], { via });
    const denied = await etcdctl(via.endpoint, ['--user', 'alice:secret', 'snapshot', 'save', join(work, 'denied.db')]);
    expect(denied.code).not.toBe(0);
    // etcd 3.4's text for this call (its Snapshot does not convert the auth error).
    expect(denied.stderr).toContain('Error: rpc error: code = Unknown desc = auth: permission denied');
    const anonymous = await etcdctl(via.endpoint, ['snapshot', 'save', join(work, 'anonymous.db')]);
    expect(anonymous.stderr).toContain('Error: rpc error: code = Unknown desc = auth: user name is empty');
    expect(existsSync(join(work, 'denied.db'))).toBe(false);
    await saveBackup(via.endpoint, join(work, 'root.db'), ['--user', 'root:rootpw']);
  });
});

describe('damaged files and occupied data dirs are refused, and nothing is written', () => {
  let good: Buffer;

  beforeAll(async () => {
    await client.kv.put('d/x', 'y');
    const path = join(work, 'good.db');
    await saveBackup(source.endpoint, path);
    good = readFileSync(path);
  });

  async function refused(bytes: Buffer, dataDir: string): Promise<Run> {
    const file = join(work, `damaged-${Math.random().toString(16).slice(2)}.db`);
    writeFileSync(file, bytes);
    const run = await gavel(['snapshot', 'restore', file, '--name', 'm1', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--data-dir', dataDir]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    return run;
  }

  it('a flipped byte: "corrupted", no data dir', async () => {
    // A byte inside a value: every length still adds up, only the digest can tell.
    const damaged = Buffer.from(good);
    const at = damaged.indexOf('a-after-compaction');
    expect(at).toBeGreaterThan(0);
    damaged[at] = damaged[at]! ^ 0x01;
    const dataDir = join(work, 'flipped');
    const run = await refused(damaged, dataDir);
    expect(run.stderr).toContain('gavel: bad snapshot: the SHA-256 digest does not match: the snapshot is corrupted');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('a truncated file: "truncated", an empty data dir stays empty, no temporary dir left', async () => {
    const dataDir = join(work, 'empty');
    mkdirSync(dataDir);
    const run = await refused(good.subarray(0, good.length - 100), dataDir);
    expect(run.stderr).toContain('the snapshot is truncated');
    expect(readdirSync(dataDir)).toEqual([]);
    expect(readdirSync(work).filter((name) => name.includes('restoring'))).toEqual([]);
  });

  it('a data dir that is not empty is refused before the file is read', async () => {
    const dataDir = join(work, 'occupied');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'keep'), 'mine');
    const run = await refused(good, dataDir);
    expect(run.stderr).toContain('exists and is not empty');
    expect(readdirSync(dataDir)).toEqual(['keep']);
  });
});

describe('a backup under load: one point in the history, and a slow client holds the member to a bound', () => {
  it('the restored state is exactly the source at the restored revision', async () => {
    // Enough data that the stream takes many 32 KiB messages while the writer runs.
    const value = 'v'.repeat(1000);
    for (let batch = 0; batch < 20; batch++) {
      await client.kv.txn({ compare: [], success: Array.from({ length: 100 }, (_, i) => op.put(`bulk/${batch}/${i}`, value)) });
    }
    let writing = true;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await client.kv.txn({ compare: [], success: [op.put(`w/${i % 10}`, String(i)), op.put('w/last', String(i))] });
        written++;
      }
    })();
    const path = join(work, 'busy.db');
    const before = written;
    await saveBackup(source.endpoint, path);
    const during = written - before;
    writing = false;
    await writer;
    expect(during, 'writes while etcdctl snapshot save ran').toBeGreaterThan(0);

    const single = await startCluster({ members: 1, target: 'gavel', prepare: restoreInto(path) });
    const restored = new Client({ endpoints: [single.members[0]!.endpoint] });
    try {
      const now = await restored.kv.get('\0', { rangeEnd: '\0' });
      const at = now.header.revision;
      const then = await client.kv.get('\0', { rangeEnd: '\0', revision: at });
      expect(now.kvs.map(describeKv)).toEqual(then.kvs.map(describeKv));
      expect(new Set(await hashes([source.endpoint, single.members[0]!.endpoint], at)).size).toBe(1);
    } finally {
      restored.close();
      await single.stop();
    }
  });

  it('a client that does not read holds the member to its stream bound, not the whole backup', async () => {
    // The ~2 MB written above: far more than one stream may hold (DEFAULT_MAX_BUFFERED_BYTES).
    const url = metricsUrl(source);
    const before = await streamFigures(url, 'maintenance_snapshot');
    const unread = new UnreadStream(source.endpoint, '/etcdserverpb.Maintenance/Snapshot');
    unread.send([grpcFrame('etcdserverpb.SnapshotRequest', {})], true);
    try {
      const during = await waitUntil('the snapshot stream paused', async () => {
        const figures = await streamFigures(url, 'maintenance_snapshot');
        return figures.open === (before.open ?? 0) + 1 && (figures.paused ?? 0) > (before.paused ?? 0) ? figures : undefined;
      }, 10_000, 50);
      expect(during.peakBytes).toBeLessThanOrEqual(DEFAULT_MAX_BUFFERED_BYTES + SNAPSHOT_BLOB_BYTES + 1024);
      // The member serves others meanwhile.
      expect((await client.kv.put('bp/snapshot', 'x')).header.revision).toBeGreaterThan(0n);
    } finally {
      unread.close();
    }
    await waitUntil('the snapshot stream released', async () => {
      const figures = await streamFigures(url, 'maintenance_snapshot');
      return figures.open === (before.open ?? 0) && figures.bytes === 0 ? true : undefined;
    }, 10_000, 50);
    expect(source.logs()).toContain('snapshot stream cancelled by the client');
  });
});
