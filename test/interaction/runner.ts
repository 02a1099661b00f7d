/**
 * Interaction scripts in the style of etcd-io/raft's datadriven tests. A script is a sequence
 * of blocks:
 *
 *   # comments (kept)
 *   <command> <args...>
 *   ----
 *   <expected output, one or more non-empty lines>
 *   <blank line>
 *
 * runScript() executes every command against one TestCluster and returns the script text
 * with the ACTUAL outputs, so a test compares it with the file (and UPDATE_INTERACTION=1
 * rewrites the file; review the diff before keeping it).
 */
import type { ConfChangeType, NodeId, RaftFaults } from '../../server/raft/index.js';
import { describeEntry, describeMessage } from '../../server/raft/index.js';
import { TestCluster, bytes, type NodeOptions } from './env.js';

interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string[];
}

/** Drops recorded outputs, keeping comments and commands (handy when editing a script). */
export function stripOutputs(text: string): string {
  const { blocks, trailing } = parseScript(text);
  const out: string[] = [];
  for (const block of blocks) out.push(...block.comments, block.command, '----', '');
  return [...out, ...trailing].join('\n');
}

export function parseScript(text: string): { blocks: Block[]; trailing: string[] } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let comments: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      comments.push(line);
      continue;
    }
    if (lines[i + 1] !== '----') throw new Error(`line ${i + 1}: expected ---- after command "${line}"`);
    const expected: string[] = [];
    i += 2;
    while (i < lines.length && lines[i]!.trim() !== '') expected.push(lines[i++]!);
    blocks.push({ comments, command: line, expected });
    comments = [];
  }
  return { blocks, trailing: comments };
}

export function runScript(text: string): string {
  const { blocks, trailing } = parseScript(text);
  const cluster = new TestCluster();
  const out: string[] = [];
  for (const block of blocks) {
    out.push(...block.comments, block.command, '----');
    let result: string[];
    try {
      result = runCommand(cluster, block.command);
    } catch (err) {
      result = [`error: ${err instanceof Error ? err.message : String(err)}`];
    }
    out.push(...(result.length === 0 ? ['ok'] : result), '');
  }
  // Normalize the end of file: exactly one newline after the last block.
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  const tail = trailing.filter((l) => l.trim() !== '');
  return [...out, ...(tail.length > 0 ? ['', ...tail] : []), ''].join('\n');
}

interface Args {
  readonly positional: string[];
  readonly named: Map<string, string>;
}

function parseArgs(tokens: string[]): Args {
  const positional: string[] = [];
  const named = new Map<string, string>();
  for (const token of tokens) {
    const eq = token.indexOf('=');
    if (eq > 0) named.set(token.slice(0, eq), token.slice(eq + 1));
    else positional.push(token);
  }
  return { positional, named };
}

function id(text: string | undefined): NodeId {
  if (text === undefined || !/^\d+$/.test(text)) throw new Error(`bad node id "${text}"`);
  return BigInt(text);
}

function int(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d+$/.test(text)) throw new Error(`bad ${what} "${text}"`);
  return Number(text);
}

function bool(text: string | undefined): boolean | undefined {
  return text === undefined ? undefined : text === 'true';
}

function idList(text: string | undefined): NodeId[] | undefined {
  return text === undefined ? undefined : text.split(',').filter((s) => s !== '').map((s) => id(s));
}

export function runCommand(cluster: TestCluster, line: string): string[] {
  const [name, ...rest] = line.trim().split(/\s+/);
  const args = parseArgs(rest);
  cluster.out.length = 0;
  const handler = COMMANDS[name ?? ''];
  if (handler === undefined) throw new Error(`unknown command "${name}"`);
  const extra = handler(cluster, args) ?? [];
  return [...cluster.out, ...extra];
}

type Handler = (cluster: TestCluster, args: Args) => string[] | undefined;

const COMMANDS: Record<string, Handler> = {
  'add-nodes': addNodes,
  campaign: (c, a) => {
    c.node(id(a.positional[0])).raw.campaign();
    return undefined;
  },
  propose: (c, a) => result(c.propose(id(a.positional[0]), a.positional[1] ?? '')),
  'propose-conf-change': (c, a) => confChange(c, a.positional[0], a.positional[1] as ConfChangeType, a.positional[2]),
  'add-node': (c, a) => confChange(c, a.positional[0], 'addNode', a.positional[1]),
  'add-learner': (c, a) => confChange(c, a.positional[0], 'addLearner', a.positional[1]),
  promote: (c, a) => confChange(c, a.positional[0], 'addNode', a.positional[1]),
  'remove-node': (c, a) => confChange(c, a.positional[0], 'removeNode', a.positional[1]),
  'process-ready': (c, a) => {
    for (const node of a.positional.map(id)) c.processReady(node);
    return undefined;
  },
  'deliver-msgs': deliverMsgs,
  drop: (c, a) => {
    const from = a.named.get('from');
    const to = a.named.get('to');
    c.drop(from === undefined ? undefined : id(from), to === undefined ? undefined : id(to));
    return undefined;
  },
  partition: (c, a) => {
    c.partition(a.positional.join(' ').split('|').map((g) => g.trim().split(/\s+/).filter((s) => s !== '').map(id)));
    return undefined;
  },
  heal: (c) => {
    c.heal();
    return undefined;
  },
  tick: tick,
  stabilize: (c, a) => {
    c.stabilize(a.positional.length === 0 ? c.ids() : a.positional.map(id));
    return undefined;
  },
  status: (c, a) => status(c, id(a.positional[0])),
  'raft-state': (c) => c.ids().map((n) => {
    const s = c.node(n).raw.status();
    return `${n}: ${s.role} term=${s.term} lead=${s.lead} commit=${s.commit}`;
  }),
  log: (c, a) => {
    const n = id(a.positional[0]);
    const entries = c.logOf(n);
    const raft = c.node(n).raw.internals.raft;
    return [`first=${raft.log.firstIndex()} last=${raft.log.lastIndex()} commit=${raft.log.committed}`, ...entries.map(describeEntry)];
  },
  applied: (c, a) => {
    const node = c.node(id(a.positional[0]));
    return [`applied=${node.appliedIndex} [${node.applied.join(' ')}]`];
  },
  compact: (c, a) => {
    c.node(id(a.positional[0])).compact(int(a.positional[1], 'index'));
    return undefined;
  },
  'transfer-leader': (c, a) => {
    c.node(id(a.positional[0])).raw.transferLeader(id(a.positional[1]));
    return undefined;
  },
  'read-index': (c, a) => result(c.node(id(a.positional[0])).raw.readIndex(bytes(a.positional[1] ?? ''))),
  'read-states': (c, a) => {
    const node = c.node(id(a.positional[0]));
    const lines = node.readStates.map((rs) => `index=${rs.index} ctx=${new TextDecoder().decode(rs.context)}`);
    node.readStates = [];
    return lines.length === 0 ? ['none'] : lines;
  },
  restart: (c, a) => {
    c.restart(id(a.positional[0]));
    return undefined;
  },
  'report-unreachable': (c, a) => {
    c.node(id(a.positional[0])).raw.reportUnreachable(id(a.positional[1]));
    return undefined;
  },
  'pending-msgs': (c) => (c.queue.length === 0 ? ['none'] : c.queue.map(describeMessage)),
};

const FAULT_NAMES: readonly (keyof RaftFaults)[] = ['commitOldTermEntries', 'forgetVote', 'grantVoteToShorterLog', 'readIndexWithoutHeartbeat'];

function addNodes(c: TestCluster, a: Args): string[] {
  const faults: Record<string, boolean> = {};
  for (const fault of (a.named.get('faults') ?? '').split(',').filter((s) => s !== '')) {
    if (!(FAULT_NAMES as readonly string[]).includes(fault)) throw new Error(`unknown fault ${fault}`);
    faults[fault] = true;
  }
  const named = a.named;
  const options: NodeOptions & { join?: boolean; voters?: NodeId[]; learners?: NodeId[] } = {
    join: a.positional.includes('join'),
    ...optional('preVote', bool(named.get('prevote'))),
    ...optional('checkQuorum', bool(named.get('checkquorum'))),
    ...optional('electionTicks', named.has('election') ? int(named.get('election'), 'election') : undefined),
    ...optional('heartbeatTicks', named.has('heartbeat') ? int(named.get('heartbeat'), 'heartbeat') : undefined),
    ...optional('maxSizePerMsg', named.has('max-size') ? int(named.get('max-size'), 'max-size') : undefined),
    ...optional('maxInflightMsgs', named.has('inflight') ? int(named.get('inflight'), 'inflight') : undefined),
    ...optional('voters', idList(named.get('voters'))),
    ...optional('learners', idList(named.get('learners'))),
    ...(Object.keys(faults).length > 0 ? { faults: faults as RaftFaults } : {}),
  };
  const ids = c.addNodes(int(a.positional[0], 'count'), options);
  return [`added ${ids.join(' ')}`];
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function result(r: { ok: true } | { ok: false; reason: string }): string[] {
  return r.ok ? [] : [`refused: ${r.reason}`];
}

function confChange(c: TestCluster, on: string | undefined, type: ConfChangeType, target: string | undefined): string[] {
  return result(c.proposeConfChange(id(on), { type, nodeId: id(target) }));
}

function deliverMsgs(c: TestCluster, a: Args): string[] | undefined {
  const to = new Set(a.positional.filter((p) => p !== 'drop').map(id));
  const from = a.named.get('from');
  const type = a.named.get('type');
  const taken = c.deliver((m) => (to.size === 0 || to.has(m.to))
    && (from === undefined || m.from === id(from))
    && (type === undefined || m.type === type), a.positional.includes('drop'));
  return taken === 0 ? ['no messages'] : undefined;
}

function tick(c: TestCluster, a: Args): undefined {
  const times = a.positional.find((p) => p.startsWith('x'));
  const count = times === undefined ? 1 : int(times.slice(1), 'tick count');
  const targets = a.positional.filter((p) => !p.startsWith('x'));
  const ids = targets.includes('all') ? c.ids() : targets.map(id);
  for (let i = 0; i < count; i++) for (const n of ids) c.tick(n);
  return undefined;
}

function status(c: TestCluster, n: NodeId): string[] {
  const s = c.node(n).raw.status();
  const voters = s.confState.voters.join(' ');
  const learners = s.confState.learners.length > 0 ? ` learners=(${s.confState.learners.join(' ')})` : '';
  const lines = [`${n}: ${s.role} term=${s.term} vote=${s.vote} lead=${s.lead} commit=${s.commit} applied=${s.applied} voters=(${voters})${learners}`];
  if (s.leadTransferee !== 0n) lines.push(`  transferring to ${s.leadTransferee}`);
  for (const [peer, pr] of s.progress ?? []) {
    lines.push(`  ${peer}: ${pr.state} match=${pr.match} next=${pr.next}${pr.isLearner ? ' learner' : ''}`);
  }
  return lines;
}
