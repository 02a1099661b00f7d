// Goal: a member serves /metrics in Prometheus text format with etcd's metric names, and /health, /livez, /readyz as etcd and Kubernetes expect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, op } from '../../client/index.js';
import { etcdctl, startMember, stopAllMembers, targetFromEnv, waitUntil, type Member } from '../helpers/gavel.js';
import { alertMetrics, dashboardMetrics } from '../deploy/deploy-files.js';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A strict parser for the text exposition format: every line is a comment or a sample. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|Nan|[+-]Inf)$/.exec(line);
    if (match === null) throw new Error(`not exposition format: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[3] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
      const eq = pair.indexOf('=');
      labels[pair.slice(0, eq)] = pair.slice(eq + 2, -1);
    }
    samples.push({ name: match[1]!, labels, value: Number(match[4]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

describe.skipIf(targetFromEnv() === 'etcd')('metrics and health endpoints', () => {
  let member: Member;
  let base: string;

  beforeAll(async () => {
    // An extra metrics listener, as an operator may give one; the client port serves the same paths.
    member = await startMember({ name: 'metrics', args: ['--metrics-lock-names', 'metered,metered-election', '--listen-metrics-urls', 'http://127.0.0.1:0'] });
    const line = member.logs().split('\n').find((l) => l.includes('"serving metrics and health"'));
    const address = line === undefined ? undefined : (JSON.parse(line) as { address: string }).address;
    if (address === undefined) throw new Error(`no metrics address in the log:\n${member.logs()}`);
    base = `http://${address}`;
  });
  afterAll(stopAllMembers);

  it('answers /health with etcd JSON, and /livez and /readyz with 200', async () => {
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ health: 'true' });
    expect((await fetch(`${base}/livez`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('serves /metrics, /health, /livez and /readyz on the client port too, the same as on the metrics listener', async () => {
    const client = member.clientUrl;
    expect(client).not.toBe(base);
    const health = await fetch(`${client}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ health: 'true' });
    expect((await fetch(`${client}/livez`)).status).toBe(200);
    expect((await fetch(`${client}/readyz`)).status).toBe(200);
    const scraped = parseExposition(await (await fetch(`${client}/metrics`)).text());
    expect(value(scraped, 'etcd_server_has_leader')).toBe(1);
  });

  it('scrapes in exposition format after traffic, with the counters moving', async () => {
    const before = parseExposition(await (await fetch(`${base}/metrics`)).text());
    for (let i = 0; i < 5; i++) expect((await etcdctl(member.endpoint, ['put', `m/${i}`, 'v'])).code).toBe(0);
    expect((await etcdctl(member.endpoint, ['get', '--prefix', 'm/'])).code).toBe(0);
    // The Auth service counts too (auth is off: anyone may list users).
    await etcdctl(member.endpoint, ['user', 'list']);
    const response = await fetch(`${base}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const after = parseExposition(await response.text());

    expect(value(after, 'etcd_server_has_leader')).toBe(1);
    expect(value(after, 'etcd_server_is_leader')).toBe(1);
    expect(value(after, 'etcd_server_leader_changes_seen_total')).toBeGreaterThanOrEqual(1);
    const put = { grpc_service: 'etcdserverpb.KV', grpc_method: 'Put', grpc_type: 'unary' };
    expect((value(after, 'grpc_server_handled_total', { ...put, grpc_code: 'OK' }) ?? 0) - (value(before, 'grpc_server_handled_total', { ...put, grpc_code: 'OK' }) ?? 0)).toBe(5);
    expect(value(after, 'grpc_server_started_total', put)).toBeGreaterThanOrEqual(5);
    expect(value(after, 'grpc_server_handling_seconds_count', put)).toBeGreaterThanOrEqual(5);
    expect(value(after, 'grpc_server_handled_total', { grpc_service: 'etcdserverpb.Auth', grpc_method: 'UserList', grpc_code: 'OK' })).toBeGreaterThanOrEqual(1);
    expect(value(after, 'etcd_server_proposals_committed_total')! - value(before, 'etcd_server_proposals_committed_total')!).toBeGreaterThanOrEqual(5);
    expect(value(after, 'etcd_server_proposals_applied_total')).toBeGreaterThanOrEqual(value(before, 'etcd_server_proposals_applied_total')! + 5);
    expect(value(after, 'etcd_disk_wal_fsync_duration_seconds_count')).toBeGreaterThan(value(before, 'etcd_disk_wal_fsync_duration_seconds_count') ?? 0);
    expect(value(after, 'etcd_disk_backend_commit_duration_seconds_count')).toBeGreaterThan(0);
    expect(value(after, 'etcd_debugging_mvcc_keys_total')).toBe(5);
    expect(value(after, 'etcd_mvcc_db_total_size_in_bytes')).toBeGreaterThan(0);
    expect(value(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    // Every histogram bucket series ends in +Inf, as Prometheus requires.
    expect(after.some((s) => s.name === 'etcd_disk_wal_fsync_duration_seconds_bucket' && s.labels['le'] === '+Inf')).toBe(true);
  });

  it('declares every metric family the shipped dashboard and alerts query ', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    // Families are declared even before their first sample (a peer counter on a lone member).
    const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const queried = [...dashboardMetrics(), ...alertMetrics()].filter((m) => !m.synthetic && !m.pending);
    expect(queried.length).toBeGreaterThan(10);
    const missing = [...new Set(queried.map((m) => m.family))].filter((family) => !families.has(family));
    expect(missing).toEqual([]);
  });

  it('counts lock waiters, holders, waits, hand-offs, fencing rejections and elections (gavel_*)', async () => {
    const client = new Client({ endpoints: [member.endpoint] });
    const scrape = async (): Promise<Sample[]> => parseExposition(await (await fetch(`${base}/metrics`)).text());
    const [a, b] = await Promise.all([client.session(), client.session()]);
    const first = await client.lockService.lock('metered', { lease: a!.leaseId });
    const second = client.lockService.lock('metered', { lease: b!.leaseId });
    await waitUntil('a waiter', async () => (value(await scrape(), 'gavel_lock_waiters', { service: 'v3lock', name: 'metered' }) === 1 ? true : undefined), 5_000, 20);
    expect(value(await scrape(), 'gavel_lock_holders', { service: 'v3lock', name: 'metered' })).toBe(1);
    await client.lockService.unlock(first.key);
    const held = await second;
    const samples = await scrape();
    expect(value(samples, 'gavel_lock_waiters', { service: 'v3lock', name: 'metered' })).toBe(0);
    expect(value(samples, 'gavel_lock_acquire_wait_seconds_count', { service: 'v3lock', name: 'metered' })).toBe(2);
    expect(value(samples, 'gavel_lock_handoff_seconds_count', { service: 'v3lock', name: 'metered' })).toBe(1);
    await client.lockService.unlock(held.key);
    // A lock name outside --metrics-lock-names is counted as "other" (bounded cardinality).
    const other = await client.lockService.lock('unlisted', { lease: a!.leaseId });
    expect(value(await scrape(), 'gavel_lock_holders', { service: 'v3lock', name: 'other' })).toBe(1);
    await client.lockService.unlock(other.key);

    // A stale holder's fenced write is refused and counted.
    const stale = await client.mutex('fenced-metric', { session: b! }).lock();
    await client.lease.revoke(b!.leaseId);
    await stale.fencedTxn({ compare: [], success: [op.put('x', 'y')] }).catch(() => undefined);
    expect(value(await scrape(), 'gavel_fencing_token_rejections_total')).toBe(1);

    // The coordinator's queue: one holder, one waiter on a listed name.
    const holderLock = await client.coordinatorMutex('metered', { session: a! }).lock();
    const queuedLock = client.coordinatorMutex('metered', { session: a! }).lock();
    await waitUntil('a coordinator waiter', async () => (value(await scrape(), 'gavel_coordinator_queue_length', { name: 'metered' }) === 1 ? true : undefined), 5_000, 20);
    expect(value(await scrape(), 'gavel_lock_holders', { service: 'coordinator' })).toBe(1);
    expect(value(await scrape(), 'gavel_lock_waiters', { service: 'coordinator', name: 'metered' })).toBe(1);
    await holderLock.unlock();
    await (await queuedLock).unlock();
    expect(value(await scrape(), 'gavel_coordinator_queue_length', { name: 'metered' })).toBe(0);

    await client.election('metered-election', { session: a! }).campaign('v');
    expect(value(await scrape(), 'gavel_election_leader_changes_total')).toBeUndefined(); // client-side recipe: not seen
    await a!.close();
    client.close();
  });
});
