/**
 * The gateway's paths: etcd 3.4's `google.api.http` annotations (rpc.proto, v3lock.proto,
 * v3election.proto), all `post` with `body: "*"`. These are wire facts: clients hard-code them.
 *
 * Two of etcd's quirks are kept on purpose:
 *   - Hash and HashKV are both annotated `/v3/maintenance/hash`; etcd's mux serves Hash there
 *     (checked against etcd 3.4.23), so HashKV has no path.
 *   - The lease calls other than grant and keep-alive also answer under `/v3/kv/lease/...`.
 * Two paths are etcd 3.5's (gavel reports API 3.5 in Status): `/v3/auth/status` and
 * `/v3/maintenance/downgrade`.
 * `/v3beta/` is etcd's own alias (its access controller rewrites it); `/v3alpha/` is the 3.2
 * prefix that older tools (Patroni before it reads /version) still try, served here as well.
 */
import type { ServiceName } from '../../client/channel.js';

/** unary: one request, one answer. bidi: a body of requests, a stream of answers. server: one request, a stream. */
export type RouteKind = 'unary' | 'server' | 'bidi';

export interface Route {
  readonly service: ServiceName;
  readonly method: string;
  readonly kind: RouteKind;
}

const ROUTES: readonly (readonly [string, ServiceName, string, RouteKind?])[] = [
  ['kv/range', 'etcdserverpb.KV', 'Range'],
  ['kv/put', 'etcdserverpb.KV', 'Put'],
  ['kv/deleterange', 'etcdserverpb.KV', 'DeleteRange'],
  ['kv/txn', 'etcdserverpb.KV', 'Txn'],
  ['kv/compaction', 'etcdserverpb.KV', 'Compact'],
  ['watch', 'etcdserverpb.Watch', 'Watch', 'bidi'],
  ['lease/grant', 'etcdserverpb.Lease', 'LeaseGrant'],
  ['lease/revoke', 'etcdserverpb.Lease', 'LeaseRevoke'],
  ['kv/lease/revoke', 'etcdserverpb.Lease', 'LeaseRevoke'],
  ['lease/keepalive', 'etcdserverpb.Lease', 'LeaseKeepAlive', 'bidi'],
  ['lease/timetolive', 'etcdserverpb.Lease', 'LeaseTimeToLive'],
  ['kv/lease/timetolive', 'etcdserverpb.Lease', 'LeaseTimeToLive'],
  ['lease/leases', 'etcdserverpb.Lease', 'LeaseLeases'],
  ['kv/lease/leases', 'etcdserverpb.Lease', 'LeaseLeases'],
  ['cluster/member/add', 'etcdserverpb.Cluster', 'MemberAdd'],
  ['cluster/member/remove', 'etcdserverpb.Cluster', 'MemberRemove'],
  ['cluster/member/update', 'etcdserverpb.Cluster', 'MemberUpdate'],
  ['cluster/member/list', 'etcdserverpb.Cluster', 'MemberList'],
  ['cluster/member/promote', 'etcdserverpb.Cluster', 'MemberPromote'],
  ['maintenance/alarm', 'etcdserverpb.Maintenance', 'Alarm'],
  ['maintenance/status', 'etcdserverpb.Maintenance', 'Status'],
  ['maintenance/defragment', 'etcdserverpb.Maintenance', 'Defragment'],
  ['maintenance/hash', 'etcdserverpb.Maintenance', 'Hash'],
  ['maintenance/snapshot', 'etcdserverpb.Maintenance', 'Snapshot', 'server'],
  ['maintenance/transfer-leadership', 'etcdserverpb.Maintenance', 'MoveLeader'],
  ['maintenance/downgrade', 'etcdserverpb.Maintenance', 'Downgrade'],
  ['auth/enable', 'etcdserverpb.Auth', 'AuthEnable'],
  ['auth/disable', 'etcdserverpb.Auth', 'AuthDisable'],
  ['auth/status', 'etcdserverpb.Auth', 'AuthStatus'],
  ['auth/authenticate', 'etcdserverpb.Auth', 'Authenticate'],
  ['auth/user/add', 'etcdserverpb.Auth', 'UserAdd'],
  ['auth/user/get', 'etcdserverpb.Auth', 'UserGet'],
  ['auth/user/list', 'etcdserverpb.Auth', 'UserList'],
  ['auth/user/delete', 'etcdserverpb.Auth', 'UserDelete'],
  ['auth/user/changepw', 'etcdserverpb.Auth', 'UserChangePassword'],
  ['auth/user/grant', 'etcdserverpb.Auth', 'UserGrantRole'],
  ['auth/user/revoke', 'etcdserverpb.Auth', 'UserRevokeRole'],
  ['auth/role/add', 'etcdserverpb.Auth', 'RoleAdd'],
  ['auth/role/get', 'etcdserverpb.Auth', 'RoleGet'],
  ['auth/role/list', 'etcdserverpb.Auth', 'RoleList'],
  ['auth/role/delete', 'etcdserverpb.Auth', 'RoleDelete'],
  ['auth/role/grant', 'etcdserverpb.Auth', 'RoleGrantPermission'],
  ['auth/role/revoke', 'etcdserverpb.Auth', 'RoleRevokePermission'],
  ['lock/lock', 'v3lockpb.Lock', 'Lock'],
  ['lock/unlock', 'v3lockpb.Lock', 'Unlock'],
  ['election/campaign', 'v3electionpb.Election', 'Campaign'],
  ['election/proclaim', 'v3electionpb.Election', 'Proclaim'],
  ['election/leader', 'v3electionpb.Election', 'Leader'],
  ['election/observe', 'v3electionpb.Election', 'Observe', 'server'],
  ['election/resign', 'v3electionpb.Election', 'Resign'],
];

const BY_PATH = new Map<string, Route>(ROUTES.map(([path, service, method, kind]) => [path, { service, method, kind: kind ?? 'unary' }]));

/** The prefixes the gateway owns: everything under them is its to answer (404 included). */
export const GATEWAY_PREFIXES = ['/v3/', '/v3beta/', '/v3alpha/'] as const;

/** The gateway part of a request path ('kv/range'), or undefined when it is not a gateway path. */
export function gatewayPath(pathname: string): string | undefined {
  for (const prefix of GATEWAY_PREFIXES) if (pathname.startsWith(prefix)) return pathname.slice(prefix.length);
  return undefined;
}

export function routeOf(path: string): Route | undefined {
  return BY_PATH.get(path);
}

/** Every route's path, for tests. */
export function routePaths(): string[] {
  return [...BY_PATH.keys()];
}
