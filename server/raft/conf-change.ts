/**
 * The payload of a 'confChange' entry. Layout: 1 byte type, 8 bytes node id (u64 big-endian),
 * then the opaque context. Decoding validates everything it reads (it comes from disk/network).
 */
import type { ConfChange, ConfChangeType, NodeId } from './types.js';
import { assert, assertNever } from './util.js';

const HEADER_BYTES = 9;
const MAX_NODE_ID = (1n << 64n) - 1n;

function typeCode(type: ConfChangeType): number {
  switch (type) {
    case 'addNode':
      return 0;
    case 'addLearner':
      return 1;
    case 'removeNode':
      return 2;
    default:
      return assertNever(type, 'conf change type');
  }
}

const TYPES_BY_CODE: readonly ConfChangeType[] = ['addNode', 'addLearner', 'removeNode'];

export function encodeConfChange(cc: ConfChange): Uint8Array {
  assert(cc.nodeId > 0n && cc.nodeId <= MAX_NODE_ID, `conf change node id ${cc.nodeId} out of range`);
  const bytes = new Uint8Array(HEADER_BYTES + cc.context.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, typeCode(cc.type));
  view.setBigUint64(1, cc.nodeId);
  bytes.set(cc.context, HEADER_BYTES);
  return bytes;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  assert(data.byteLength >= HEADER_BYTES, `conf change entry too short: ${data.byteLength} bytes`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const type = TYPES_BY_CODE[view.getUint8(0)];
  assert(type !== undefined, `unknown conf change type ${view.getUint8(0)}`);
  const nodeId: NodeId = view.getBigUint64(1);
  assert(nodeId > 0n, 'conf change for node 0');
  return { type, nodeId, context: data.slice(HEADER_BYTES) };
}
