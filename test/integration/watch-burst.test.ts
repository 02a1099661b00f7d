// Goal: a burst of watch creations on one stream, sent before the client reads anything, never ends the stream: every create gets its answer in order (gavel refuses the ones past --max-watchers-per-stream one by one, etcd has no limit) and the watchers created keep their events (issue #20).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, stopAllMembers, waitUntil, type Member } from '../helpers/gavel.js';
import { EtcdGrpcClient, type WatchResponse } from '../helpers/grpc.js';

/** gavel's default --max-watchers-per-stream, and twice as many creates: the burst of the issue. */
const LIMIT = 10_000;
const CREATES = 2 * LIMIT;
const PUTS = 200;
const TOO_MANY = `gavel: too many watchers on this stream (limit ${LIMIT})`;

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

const keyOf = (watcher: number): string => `burst/${watcher % LIMIT}`;

describe('a burst of watch creations on one stream', () => {
  it(`${CREATES} creates before reading: all answered in order, the first ${LIMIT} watchers get every event, the stream stays open`, async () => {
    const stream = client.duplex('Watch', 'Watch');
    const responses: WatchResponse[] = [];
    let ended: unknown;
    stream.on('data', (response) => responses.push(response as WatchResponse));
    stream.on('error', (error) => (ended = error));
    stream.on('end', () => (ended ??= 'end'));
    try {
      // The client reads nothing until the whole burst has reached the member: its answers back up
      // in the member (HTTP/2 flow control stops them at the paused reader).
      stream.pause();
      await new Promise<void>((resolve) => {
        for (let watcher = 0; watcher < CREATES; watcher++) {
          const last = watcher === CREATES - 1;
          stream.write({ create_request: { key: Buffer.from(keyOf(watcher)) } }, last ? () => resolve() : undefined);
        }
      });
      // Give the member time to read the burst while the client still reads nothing. (Not a
      // threshold: the assertions hold however long this takes, up to the 30 s a client may go
      // without reading; longer only makes the member's backlog of answers larger.)
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      stream.resume();
      const answers = (): WatchResponse[] => responses.filter((response) => response.created);
      await waitUntil('every create answered', () => (answers().length >= CREATES || ended !== undefined ? true : undefined), 60_000, 50);
      expect(ended).toBeUndefined();
      const created = answers();
      expect(created).toHaveLength(CREATES);
      expect(created.slice(0, LIMIT).map((r) => [r.watch_id, r.canceled])).toEqual(Array.from({ length: LIMIT }, (_, i) => [String(i), false]));
      for (const [index, response] of created.slice(LIMIT).entries()) {
        // etcd 3.4 has no per-stream limit; gavel refuses each create past it with etcd's answer for a refused create.
        if (member.target === 'etcd') expect([response.watch_id, response.canceled]).toEqual([String(LIMIT + index), false]);
        else expect([response.watch_id, response.created, response.canceled, response.cancel_reason]).toEqual(['-1', true, true, TOO_MANY]);
      }

      const revisions = new Map<string, number>();
      for (let put = 0; put < PUTS; put++) {
        const watcher = put * (LIMIT / PUTS);
        const response = await client.put(keyOf(watcher), `v${put}`);
        revisions.set(String(watcher), Number(response.header.revision));
      }
      const delivered = (): Map<string, number[]> => {
        const byWatcher = new Map<string, number[]>();
        for (const response of responses) {
          for (const event of response.events) byWatcher.set(response.watch_id, [...(byWatcher.get(response.watch_id) ?? []), Number(event.kv.mod_revision)]);
        }
        return byWatcher;
      };
      await waitUntil('every event delivered', () => ([...revisions.keys()].every((id) => delivered().has(id)) || ended !== undefined ? true : undefined), 30_000, 50);
      expect(ended).toBeUndefined();
      const events = delivered();
      for (const [watchId, revision] of revisions) expect(events.get(watchId), `watcher ${watchId}`).toEqual([revision]);
    } finally {
      stream.cancel();
    }
  }, 120_000);
});
