/**
 * The replicated alarm list (etcd's v3alarm.AlarmStore): which member raised which alarm.
 * Changed only by applying committed `alarm` entries, so every member holds the same list; it is
 * stored in the 'alarm' space (key = member id u64 + alarm type u8, empty value), travels in
 * snapshots (alarmRecords) and is reloaded at start (loadAlarms). At most members × alarm types
 * entries: small by construction.
 */
import { assert } from '../errors.js';
import { readU64, type BatchOp, type Storage } from '../storage/layout.js';

/** etcdserverpb.AlarmType. */
export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;
export type AlarmType = (typeof AlarmType)[keyof typeof AlarmType];

const NAMES: Readonly<Record<AlarmType, string>> = { 0: 'NONE', 1: 'NOSPACE', 2: 'CORRUPT' };

export function isAlarmType(value: number): value is AlarmType {
  return value === AlarmType.NONE || value === AlarmType.NOSPACE || value === AlarmType.CORRUPT;
}

export interface AlarmMember {
  readonly memberId: bigint;
  readonly alarm: AlarmType;
}

/**
 * etcd's AlarmMember.String(), the protobuf compact text form, trailing space included: Status
 * reports alarms in its `errors` field this way ("memberID:123 alarm:NOSPACE ").
 */
export function alarmText(member: AlarmMember): string {
  return `memberID:${member.memberId} alarm:${NAMES[member.alarm]} `;
}

export class AlarmStore {
  /** Keyed by alarmKey: one entry per (member, type), as etcd's map of maps. */
  private readonly raised = new Map<string, AlarmMember>();

  static restore(members: readonly AlarmMember[]): AlarmStore {
    const store = new AlarmStore();
    for (const member of members) store.raised.set(mapKey(member), member);
    return store;
  }

  /** etcd's Get: NONE lists every alarm, another type those of that type; ordered by type, then member. */
  list(type: AlarmType = AlarmType.NONE): AlarmMember[] {
    const all = [...this.raised.values()].filter((m) => type === AlarmType.NONE || m.alarm === type);
    return all.sort((a, b) => a.alarm - b.alarm || (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  }

  /** Whether any member (or, given, that member) has raised `type`. */
  has(type: AlarmType, memberId?: bigint): boolean {
    if (memberId !== undefined) return this.raised.has(mapKey({ memberId, alarm: type }));
    for (const member of this.raised.values()) if (member.alarm === type) return true;
    return false;
  }

  /** Raises `alarm` for `memberId`; raising it again changes nothing and writes nothing. */
  activate(memberId: bigint, alarm: AlarmType): { member: AlarmMember; ops: BatchOp[] } {
    const member = { memberId, alarm };
    const existing = this.raised.get(mapKey(member));
    if (existing !== undefined) return { member: existing, ops: [] };
    this.raised.set(mapKey(member), member);
    return { member, ops: [{ type: 'put', space: 'alarm', key: recordKey(member), value: new Uint8Array(0) }] };
  }

  /** Clears `alarm` for `memberId`; `member` is undefined when it was not raised. */
  deactivate(memberId: bigint, alarm: AlarmType): { member: AlarmMember | undefined; ops: BatchOp[] } {
    const member = this.raised.get(mapKey({ memberId, alarm }));
    if (member === undefined) return { member: undefined, ops: [] };
    this.raised.delete(mapKey(member));
    return { member, ops: [{ type: 'del', space: 'alarm', key: recordKey(member) }] };
  }
}

/** The alarm space's records for a snapshot (server/apply/snapshot.ts). */
export function alarmRecords(store: AlarmStore): BatchOp[] {
  return store.list().map((member) => ({ type: 'put', space: 'alarm', key: recordKey(member), value: new Uint8Array(0) }));
}

export async function loadAlarms(storage: Storage): Promise<AlarmStore> {
  const members: AlarmMember[] = [];
  for await (const key of storage.space('alarm').keys()) members.push(decodeRecordKey(key));
  return AlarmStore.restore(members);
}

function mapKey(member: AlarmMember): string {
  return `${member.alarm}/${member.memberId}`;
}

function recordKey(member: AlarmMember): Uint8Array {
  const key = new Uint8Array(9);
  const view = new DataView(key.buffer);
  view.setBigUint64(0, member.memberId);
  view.setUint8(8, member.alarm);
  return key;
}

function decodeRecordKey(key: Uint8Array): AlarmMember {
  assert(key.byteLength === 9, `alarm record key has ${key.byteLength} bytes, not 9`);
  const alarm = key[8] ?? -1;
  assert(isAlarmType(alarm) && alarm !== AlarmType.NONE, `alarm record names unknown alarm type ${alarm}`);
  return { memberId: readU64(key.subarray(0, 8)), alarm };
}
