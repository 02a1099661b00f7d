/**
 * Applying alarms, as etcd's applierV3backend.Alarm and applierV3Capped: an `alarm` entry
 * raises or clears one alarm in the replicated AlarmStore, and while NOSPACE is raised every
 * member refuses, when it applies them, the requests that add data — Put, a Txn that puts in
 * either branch, LeaseGrant — with `etcdserver: mvcc: database space exceeded`. Deletes, lease
 * revokes and expiries, compactions and everything else still apply, so an operator can free
 * space. Deterministic: it depends on the replicated alarm list only, never on a member's disk.
 *
 * CORRUPT is stored and reported like any alarm, but gavel runs no corruption check and does not
 * restrict anything while it is raised.
 */
import { GavelError } from '../errors.js';
import { toBigInt } from '../api/convert.js';
import type { BatchOp } from '../storage/layout.js';
import type { WireAlarmRequest, WireInternalRequest } from '../api/wire.js';
import { AlarmType, isAlarmType, type AlarmMember, type AlarmStore } from './alarms.js';
import { txnPuts } from './quota.js';

/** etcdserverpb.AlarmRequest.AlarmAction. */
export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;

export interface AlarmResult {
  readonly type: 'alarm';
  /** etcd's AlarmResponse.alarms: the alarm raised or cleared (empty when nothing was cleared). */
  readonly alarms: readonly AlarmMember[];
}

export function applyAlarm(store: AlarmStore, request: WireAlarmRequest): { result: AlarmResult; ops: BatchOp[] } {
  const alarm = checkedAlarmType(request.alarm);
  const memberId = toBigInt(request.memberID);
  switch (request.action) {
    case AlarmAction.GET:
      return { result: { type: 'alarm', alarms: store.list(alarm) }, ops: [] };
    case AlarmAction.ACTIVATE: {
      if (alarm === AlarmType.NONE) throw new GavelError('InvalidArgument', 'etcdserver: cannot activate alarm NONE');
      const { member, ops } = store.activate(memberId, alarm);
      return { result: { type: 'alarm', alarms: [member] }, ops };
    }
    case AlarmAction.DEACTIVATE: {
      const { member, ops } = store.deactivate(memberId, alarm);
      return { result: { type: 'alarm', alarms: member === undefined ? [] : [member] }, ops };
    }
    default:
      throw new GavelError('InvalidArgument', `etcdserver: unknown alarm action ${request.action}`);
  }
}

/** etcd's applierV3Capped: throws NoSpace for a request that adds data while NOSPACE is raised. */
export function refuseWhenCapped(store: AlarmStore, request: WireInternalRequest): void {
  if (!store.has(AlarmType.NOSPACE)) return;
  const addsData = request.request === 'put' || request.request === 'lease_grant' || (request.request === 'txn' && request.txn !== null && request.txn !== undefined && txnPuts(request.txn));
  if (addsData) throw new GavelError('NoSpace');
}

function checkedAlarmType(value: number | undefined): AlarmType {
  const alarm = value ?? AlarmType.NONE;
  if (!isAlarmType(alarm)) throw new GavelError('InvalidArgument', `etcdserver: unknown alarm type ${alarm}`);
  return alarm;
}
