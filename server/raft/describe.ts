/**
 * Human-readable one-line descriptions of entries, messages and Readies, for logs, the
 * interaction scripts (test/interaction) and the simulator's traces. Output is deterministic.
 */
import { decodeConfChange } from './conf-change.js';
import type { ConfState, Entry, Message, Ready, Snapshot } from './types.js';
import { assertNever, bytesToHex } from './util.js';

export function describeBytes(bytes: Uint8Array): string {
  const printable = bytes.every((b) => b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c);
  if (printable) return `"${Buffer.from(bytes).toString('latin1')}"`;
  return `0x${bytesToHex(bytes)}`;
}

export function describeEntry(entry: Entry): string {
  const head = `${entry.term}/${entry.index}`;
  switch (entry.type) {
    case 'normal':
      return `${head} ${describeBytes(entry.data)}`;
    case 'confChange': {
      const cc = decodeConfChange(entry.data);
      return `${head} ${cc.type}(${cc.nodeId})`;
    }
    default:
      return assertNever(entry.type, 'entry type');
  }
}

export function describeEntries(entries: readonly Entry[]): string {
  return `[${entries.map(describeEntry).join(', ')}]`;
}

export function describeConfState(cs: ConfState): string {
  const learners = cs.learners.length > 0 ? ` learners=(${cs.learners.join(' ')})` : '';
  return `voters=(${cs.voters.join(' ')})${learners}`;
}

export function describeSnapshot(snapshot: Snapshot): string {
  const meta = snapshot.metadata;
  return `${meta.term}/${meta.index} ${describeConfState(meta.confState)}`;
}

function context(bytes: Uint8Array): string {
  return bytes.byteLength === 0 ? '' : ` ctx=${describeBytes(bytes)}`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'prop':
      return `${head} entries=${describeEntries(m.entries)}`;
    case 'app': {
      const entries = m.entries.length === 0 ? '' : ` entries=${describeEntries(m.entries)}`;
      return `${head} log=${m.logTerm}/${m.index} commit=${m.commit}${entries}`;
    }
    case 'appResp':
      return m.reject
        ? `${head} index=${m.index} reject hint=${m.logTerm}/${m.rejectHint}`
        : `${head} index=${m.index}`;
    case 'vote':
    case 'preVote':
      return `${head} log=${m.logTerm}/${m.index}${m.transfer ? ' transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${head} ${m.reject ? 'rejected' : 'granted'}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${context(m.context)}`;
    case 'heartbeatResp':
      return `${head}${context(m.context)}`;
    case 'snap':
      return `${head} snapshot=${describeSnapshot(m.snapshot)}`;
    case 'timeoutNow':
      return head;
    case 'transferLeader':
      return `${head} transferee=${m.transferee}`;
    case 'readIndex':
      return `${head}${context(m.context)}`;
    case 'readIndexResp':
      return `${head} index=${m.index}${context(m.context)}`;
    default:
      return assertNever(m, 'message');
  }
}

/** A multi-line description; empty sections are left out. */
export function describeReady(rd: Ready): string[] {
  const lines: string[] = [];
  if (rd.softState !== undefined) lines.push(`lead=${rd.softState.leader} role=${rd.softState.role}`);
  if (rd.hardState !== undefined) {
    lines.push(`hardState term=${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}`);
  }
  if (rd.snapshot !== undefined) lines.push(`snapshot ${describeSnapshot(rd.snapshot)}`);
  if (rd.entries.length > 0) lines.push(`entries ${describeEntries(rd.entries)}`);
  if (rd.committedEntries.length > 0) lines.push(`committed ${describeEntries(rd.committedEntries)}`);
  for (const m of rd.messages) lines.push(`send ${describeMessage(m)}`);
  for (const m of rd.messagesAfterPersist) lines.push(`send after persist ${describeMessage(m)}`);
  for (const rs of rd.readStates) lines.push(`readState index=${rs.index}${context(rs.context)}`);
  return lines;
}
