/**
 * The wire object shapes of proto/gavel/coordinator.proto and the coordinator's log entries
 * (proto/gavel/internal.proto), as proto-loader and protobufjs produce them (keepCase, int64 as
 * decimal strings, bytes as Buffers, enums as numbers, oneofs named by a discriminator field).
 */
import type { Int64, WireHeader } from '../api/wire.js';

/** gavel.v1.Mode */
export const WIRE_MODE = { EXCLUSIVE: 0, SHARED: 1 } as const;

export interface WireAcquireRequest {
  name: Buffer;
  lease: Int64;
  mode: number;
  limit: number;
  wait_ms: Int64;
  lock_delay_ms: Int64;
  owner: string;
  reattach: boolean;
}

export interface WireReleaseRequest {
  name: Buffer;
  lease: Int64;
  owner: string;
  token: Int64;
}

export interface WireHolder {
  lease: Int64;
  owner: string;
  mode: number;
  token: Int64;
}

export interface WireWaiter {
  lease: Int64;
  owner: string;
  mode: number;
  position: number;
}

export interface WireAcquireResponse {
  header?: WireHeader | null;
  state?: 'wait' | 'granted' | 'busy';
  wait?: { position: number; holders: WireHolder[]; holder_count: number; delayed: boolean } | null;
  granted?: { token: Int64 } | null;
  busy?: { holders: WireHolder[]; holder_count: number; waiters: number; delayed: boolean } | null;
}

export interface WireDescribeResponse {
  header?: WireHeader | null;
  holders: WireHolder[];
  waiters: WireWaiter[];
  limit: number;
  delayed: boolean;
}

/** gavel.internal.v1.CoordinatorRequest */
export interface WireCoordinatorRequest {
  request?: 'acquire' | 'release' | 'end_delay';
  acquire?: { request: WireAcquireRequest | null; try_only: boolean } | null;
  release?: { request: WireReleaseRequest | null; waiting_only: boolean } | null;
  end_delay?: { name: Buffer; delay_id: Int64 } | null;
}
