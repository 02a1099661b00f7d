// Goal: the response headers (and their absence) match etcd 3.4's where the etcdctl walkthrough and the JSON gateway showed gavel differing: nested Txn, Cluster, Alarm, Defragment, MoveLeader, HashKV's compact revision and a watch canceled by compaction.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, stopAllMembers, waitUntil, type Member } from '../helpers/gavel.js';
import { EtcdGrpcClient, type ResponseHeader, type WatchResponse } from '../helpers/grpc.js';

const ALARM_GET = 0;
const ALARM_ACTIVATE = 1;
const ALARM_DEACTIVATE = 2;
const ALARM_NOSPACE = 1;

/** A header present but with every field at its default: what etcd sends for a nested Txn response. */
const EMPTY_HEADER: ResponseHeader = { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' };

let member: Member;
let client: EtcdGrpcClient;

beforeAll(async () => {
  member = await startMember();
  client = new EtcdGrpcClient(member.endpoint);
});
afterAll(async () => {
  client?.close();
  await stopAllMembers();
});

const key = (text: string): Buffer => Buffer.from(text);

interface Status {
  header: ResponseHeader;
}

/** This member's header as Status reports it (Status carries the full header in etcd). */
async function status(): Promise<ResponseHeader> {
  return (await client.unary<Status>('Maintenance', 'Status', {})).header;
}

describe('KV', () => {
  it('a nested Txn response has an empty header while the put inside it carries the revision', async () => {
    const response = await client.unary<{ header: ResponseHeader; responses: { response_txn?: { header: ResponseHeader; responses: { response_put?: { header: ResponseHeader } }[] } }[] }>('KV', 'Txn', {
      success: [{ request_txn: { success: [{ request_put: { key: key('rh/nested'), value: key('v') } }] } }],
    });
    const nested = response.responses[0]?.response_txn;
    expect(nested?.header).toEqual(EMPTY_HEADER);
    expect(nested?.responses[0]?.response_put?.header.revision).toBe(response.header.revision);
  });
});

describe('Cluster', () => {
  it('MemberList and MemberUpdate answer a header with cluster, member and term but no revision', async () => {
    await client.put('rh/bump', 'v'); // a revision above 1, so a filled-in revision would show
    const full = await status();
    const expected = { cluster_id: full.cluster_id, member_id: full.member_id, revision: '0', raft_term: full.raft_term };
    const list = await client.unary<{ header: ResponseHeader; members: { ID: string; peerURLs: string[] }[] }>('Cluster', 'MemberList', {});
    expect(list.header).toEqual(expected);
    const self = list.members[0]!;
    const updated = await client.unary<{ header: ResponseHeader }>('Cluster', 'MemberUpdate', { ID: self.ID, peerURLs: self.peerURLs });
    expect(updated.header).toEqual(expected);
  });
});

describe('Maintenance', () => {
  it('Alarm (GET, ACTIVATE, DEACTIVATE) answers with no header', async () => {
    const memberID = (await status()).member_id;
    const get = await client.unary<{ header: ResponseHeader | null; alarms: unknown[] }>('Maintenance', 'Alarm', { action: ALARM_GET });
    expect(get).toEqual({ header: null, alarms: [] });
    const raised = await client.unary<{ header: ResponseHeader | null; alarms: unknown[] }>('Maintenance', 'Alarm', { action: ALARM_ACTIVATE, memberID, alarm: ALARM_NOSPACE });
    expect(raised.header).toBeNull();
    const cleared = await client.unary<{ header: ResponseHeader | null; alarms: unknown[] }>('Maintenance', 'Alarm', { action: ALARM_DEACTIVATE, memberID, alarm: ALARM_NOSPACE });
    expect(cleared.header).toBeNull();
    expect((await client.unary<{ alarms: unknown[] }>('Maintenance', 'Alarm', { action: ALARM_GET })).alarms).toEqual([]);
  });

  it('Defragment and MoveLeader (to the leader itself) answer with no header', async () => {
    expect(await client.unary('Maintenance', 'Defragment', {}, 30_000)).toEqual({ header: null });
    const memberID = (await status()).member_id;
    expect(await client.unary('Maintenance', 'MoveLeader', { targetID: memberID })).toEqual({ header: null });
  });

  it('HashKV reports compact revision -1 before the first compaction, then the compaction', async () => {
    const before = await client.unary<{ compact_revision: string }>('Maintenance', 'HashKV', { revision: 0 });
    expect(before.compact_revision).toBe('-1');
    const revision = Number((await client.put('rh/hash', 'v')).header.revision);
    await client.unary('KV', 'Compact', { revision });
    const after = await client.unary<{ compact_revision: string }>('Maintenance', 'HashKV', { revision: 0 });
    expect(after.compact_revision).toBe(String(revision));
  });
});

describe('Watch', () => {
  it('a watch canceled because of compaction has a header with no revision', async () => {
    const first = Number((await client.put('rh/w', '1')).header.revision);
    const second = Number((await client.put('rh/w', '2')).header.revision);
    await client.unary('KV', 'Compact', { revision: second });
    const full = await status();
    const stream = client.duplex('Watch', 'Watch');
    const responses: WatchResponse[] = [];
    stream.on('data', (response) => responses.push(response as WatchResponse));
    stream.on('error', () => undefined); // canceled below
    try {
      stream.write({ create_request: { key: key('rh/w'), start_revision: first } });
      const canceled = await waitUntil('compaction cancel', () => responses.find((response) => response.canceled), 10_000, 20);
      expect(canceled.compact_revision).toBe(String(second));
      expect(canceled.header).toEqual({ cluster_id: full.cluster_id, member_id: full.member_id, revision: '0', raft_term: full.raft_term });
    } finally {
      stream.cancel();
    }
  });
});
