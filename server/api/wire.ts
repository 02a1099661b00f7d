/**
 * The wire object shapes proto-loader produces and accepts (keepCase field names, int64 as
 * decimal strings, bytes as Buffers, enums as numbers, oneofs named by a discriminator field).
 * Only the fields gavel reads or writes are typed here.
 */

export type Int64 = string;

export interface WireHeader {
  cluster_id: Int64;
  member_id: Int64;
  revision: Int64;
  raft_term: Int64;
}

export interface WireKeyValue {
  key: Uint8Array;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Uint8Array;
  lease: Int64;
}

export interface WireRangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: Int64;
  revision: Int64;
  sort_order: number;
  sort_target: number;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Int64;
  max_mod_revision: Int64;
  min_create_revision: Int64;
  max_create_revision: Int64;
}

export interface WirePutRequest {
  key: Buffer;
  value: Buffer;
  lease: Int64;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface WireDeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface WireRequestOp {
  request?: 'request_range' | 'request_put' | 'request_delete_range' | 'request_txn';
  request_range?: WireRangeRequest | null;
  request_put?: WirePutRequest | null;
  request_delete_range?: WireDeleteRangeRequest | null;
  request_txn?: WireTxnRequest | null;
}

export interface WireCompare {
  result: number;
  target: number;
  key: Buffer;
  target_union?: 'version' | 'create_revision' | 'mod_revision' | 'value' | 'lease';
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Buffer;
  lease?: Int64;
  range_end: Buffer;
}

export interface WireTxnRequest {
  compare: WireCompare[];
  success: WireRequestOp[];
  failure: WireRequestOp[];
}

export interface WireCompactionRequest {
  revision: Int64;
  physical: boolean;
}

export interface WireLeaseGrantRequest {
  TTL: Int64;
  ID: Int64;
}

/** etcdserverpb.AlarmRequest: action GET 0, ACTIVATE 1, DEACTIVATE 2; alarm NONE 0, NOSPACE 1, CORRUPT 2. */
export interface WireAlarmRequest {
  action: number;
  memberID: Int64;
  alarm: number;
}

export interface WireLeaseIdRequest {
  ID: Int64;
}

export interface WireLeaseTimeToLiveRequest {
  ID: Int64;
  keys: boolean;
}

export interface WireLeaseCheckpointRequest {
  checkpoints: { ID: Int64; remaining_TTL: Int64 }[];
}

export interface WireWatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: Int64;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: Int64;
  fragment: boolean;
}

export interface WireWatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WireWatchCreateRequest | null;
  cancel_request?: { watch_id: Int64 } | null;
  progress_request?: object | null;
}

/** etcdserverpb's Auth requests (and authpb.Permission) as proto-loader gives them. */
export interface WirePermission {
  permType: number;
  key: Buffer;
  range_end: Buffer;
}

export interface WireAuthRequests {
  auth_enable: object;
  auth_disable: object;
  /** gavel.internal.v1.Authenticate: checked by the proposer, token digest only. */
  authenticate: { name: string; token_digest: string; password_digest: string };
  auth_user_add: { name: string; password: string; options?: { no_password: boolean } | null; hashedPassword: string };
  auth_user_delete: { name: string };
  auth_user_change_password: { name: string; password: string; hashedPassword: string };
  auth_user_grant_role: { user: string; role: string };
  auth_user_revoke_role: { name: string; role: string };
  auth_role_add: { name: string };
  auth_role_delete: { role: string };
  auth_role_grant_permission: { name: string; perm?: WirePermission | null };
  auth_role_revoke_permission: { role: string; key: Buffer; range_end: Buffer };
}

export type WireAuthRequestKind = keyof WireAuthRequests;

/** The Raft log payload (proto/gavel/internal.proto). */
export interface WireInternalRequest extends Partial<{ [K in WireAuthRequestKind]: WireAuthRequests[K] | null }> {
  id: Int64;
  request?: 'put' | 'delete_range' | 'txn' | 'compaction' | 'lease_grant' | 'lease_revoke' | 'lease_checkpoint' | 'member_attributes' | 'member_peer_urls' | 'coordinator' | 'lease_expire' | 'alarm' | WireAuthRequestKind;
  /** The client's user (proto/gavel/internal.proto RequestHeader); absent on the members' own proposals. */
  header?: { username: string } | null;
  put?: WirePutRequest | null;
  delete_range?: WireDeleteRangeRequest | null;
  txn?: WireTxnRequest | null;
  compaction?: WireCompactionRequest | null;
  lease_grant?: WireLeaseGrantRequest | null;
  lease_revoke?: WireLeaseIdRequest | null;
  lease_checkpoint?: WireLeaseCheckpointRequest | null;
  member_attributes?: { id: Int64; name: string; client_urls: string[] } | null;
  member_peer_urls?: { id: Int64; peer_urls: string[] } | null;
  coordinator?: import('../coordinator/wire.js').WireCoordinatorRequest | null;
  lease_expire?: WireLeaseIdRequest | null;
  alarm?: WireAlarmRequest | null;
}
