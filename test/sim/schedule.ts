/**
 * Fault schedules. Each seed draws its own mix of faults and intensities (swarm testing: some
 * runs only crash, some only partition, some do everything), so that a few hundred seeds cover
 * very different regimes. A profile biases the draw; the targeted profiles exist to make a
 * specific broken core variant show up within a bounded number of seeds (see sim.test.ts).
 */
import type { RaftFaults } from '../../server/raft/index.js';
import type { NetworkSettings } from './network.js';
import type { Prng } from './prng.js';

/** Time units per nominal tick. Message delays and fsync latencies are in units. */
export const TICK_UNITS = 10;

export type FaultVariant = keyof RaftFaults;
export const FAULT_VARIANTS: readonly FaultVariant[] = [
  'commitOldTermEntries', 'forgetVote', 'grantVoteToShorterLog', 'readIndexWithoutHeartbeat',
];

export type ProfileName = 'swarm' | 'churn' | 'figure8' | 'crashVotes' | 'staleLeader';
export const PROFILES: readonly ProfileName[] = ['swarm', 'churn', 'figure8', 'crashVotes', 'staleLeader'];

/** The profile used when none is given: targeted ones for the broken variants. */
export function defaultProfile(faults: FaultVariant | undefined): ProfileName {
  switch (faults) {
    case undefined:
      return 'swarm';
    case 'commitOldTermEntries':
      return 'figure8';
    case 'grantVoteToShorterLog':
      return 'churn';
    case 'forgetVote':
      return 'crashVotes';
    case 'readIndexWithoutHeartbeat':
      return 'staleLeader';
  }
}

export interface Schedule {
  readonly profile: ProfileName;
  /** The parameter set actually drawn (a swarm seed may draw a targeted one). */
  readonly flavor: ProfileName;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** Length of the fault phase. */
  readonly faultTicks: number;
  /** After healing: a stable leader within this many ticks... */
  readonly leaderWithinTicks: number;
  /** ...and every request finished, every member converged, within this many. */
  readonly healTicks: number;
  /** Clients keep issuing new requests this long into the heal phase. */
  readonly healIssueTicks: number;
  readonly network: NetworkSettings;
  /** Per tick, probability of a crash; crashed members restart after downTicks. */
  readonly crashPerTick: number;
  readonly downTicks: readonly [number, number];
  /** Probability that a crash/isolation targets the leader. */
  readonly leaderBias: number;
  readonly partitionPerTick: number;
  readonly partitionTicks: readonly [number, number];
  /** Per tick, probability of changing one member's clock rate; and the rate range in units per tick. */
  readonly skewPerTick: number;
  readonly tickUnitsRange: readonly [number, number];
  /** Per tick, probability of a leader transfer. */
  readonly transferPerTick: number;
  readonly fsyncMaxUnits: number;
  /** Probability that a member crashes right after granting a vote (restarting soon after). */
  readonly crashAfterVoteRate: number;
  /** Probability that a member crashes in the middle of an fsync (its Ready's writes may be lost). */
  readonly crashDuringFsyncRate: number;
  /** Probability that a leader crashes right after it committed (and applied) entries. */
  readonly crashAfterCommitRate: number;
  /** Probability that a new leader crashes within its first ticks (restarting later). */
  readonly crashNewLeaderRate: number;
  /** Bytes of entries per append message; 1 means one entry per message. */
  readonly maxSizePerMsg: number;
  readonly confChanges: boolean;
  readonly snapshotEveryEntries: number;
  readonly keepEntries: number;
  readonly clients: number;
  readonly keys: number;
  readonly attemptTimeoutTicks: number;
  readonly giveUpTicks: number;
  readonly thinkMaxUnits: number;
  readonly logReadShare: number;
}

/** Draws the schedule of one seed. */
export function drawSchedule(random: Prng, profile: ProfileName, members: number): Schedule {
  const on = (p: number): boolean => random.chance(p);
  const base: Schedule = {
    profile,
    flavor: 'swarm',
    electionTicks: 6,
    heartbeatTicks: 1,
    faultTicks: random.range(60, 140),
    leaderWithinTicks: 40,
    healTicks: 150,
    healIssueTicks: 10,
    network: {
      dropRate: on(0.6) ? random.float() * 0.2 : 0,
      duplicateRate: on(0.4) ? random.float() * 0.1 : 0,
      delayMin: 1,
      delayMax: random.range(2, 15),
      spikeRate: on(0.3) ? random.float() * 0.05 : 0,
      spikeMax: random.range(20, 150),
    },
    crashPerTick: on(0.6) ? random.float() * 0.05 : 0,
    downTicks: [1, random.range(3, 40)],
    leaderBias: random.float(),
    partitionPerTick: on(0.6) ? random.float() * 0.06 : 0,
    partitionTicks: [3, random.range(6, 50)],
    skewPerTick: on(0.5) ? random.float() * 0.08 : 0,
    tickUnitsRange: [random.range(5, TICK_UNITS), random.range(TICK_UNITS, 25)],
    transferPerTick: on(0.35) ? random.float() * 0.05 : 0,
    fsyncMaxUnits: on(0.7) ? random.range(1, 8) : 0,
    crashAfterVoteRate: on(0.2) ? random.float() * 0.3 : 0,
    crashNewLeaderRate: on(0.2) ? random.float() * 0.3 : 0,
    crashAfterCommitRate: on(0.2) ? random.float() * 0.05 : 0,
    crashDuringFsyncRate: on(0.3) ? random.float() * 0.02 : 0,
    maxSizePerMsg: random.pick([1, 256, 4096]),
    confChanges: on(0.25),
    snapshotEveryEntries: random.range(10, 60),
    keepEntries: random.pick([0, 1, 5, 20]),
    clients: random.range(2, members + 2),
    keys: random.range(1, 3),
    attemptTimeoutTicks: random.range(8, 25),
    giveUpTicks: on(0.5) ? random.range(25, 70) : Infinity,
    thinkMaxUnits: random.range(5, 40),
    logReadShare: random.float() * 0.5,
  };
  return drawProfile(random, profile, members, base);
}

function drawProfile(random: Prng, profile: ProfileName, members: number, base: Schedule): Schedule {
  switch (profile) {
    case 'swarm': {
      // Swarm testing: most seeds get the random base mix, the others one targeted profile.
      const roll = random.float();
      const targeted: readonly ProfileName[] = ['churn', 'figure8', 'crashVotes', 'staleLeader'];
      if (roll < 0.5) return base;
      return drawProfile(random, targeted[Math.floor((roll - 0.5) * 2 * targeted.length)]!, members, base);
    }
    case 'churn':
      // Leaders come and go while entries are in flight: crashes, partitions, lossy links.
      return {
        ...base,
        flavor: 'churn',
        network: { ...base.network, dropRate: 0.05 + random.float() * 0.15, delayMax: random.range(5, 30) },
        crashPerTick: 0.01 + random.float() * 0.03,
        downTicks: [1, random.range(5, 30)],
        leaderBias: 0.5 + random.float() * 0.5,
        partitionPerTick: 0.02 + random.float() * 0.04,
        partitionTicks: [3, random.range(8, 30)],
        maxSizePerMsg: 1,
        crashNewLeaderRate: 0.2 + random.float() * 0.5,
        crashAfterCommitRate: 0.02 + random.float() * 0.1,
        thinkMaxUnits: random.range(3, 15),
        clients: random.range(3, members + 3),
        giveUpTicks: random.range(30, 100),
      };
    case 'figure8':
      // Raft's Figure 8: leaders crash right after winning (before their entries spread) and
      // right after committing (before the commit spreads), restart quickly, and send one entry
      // per message, so that leaders with old-term entries and logs with conflicting newer
      // entries are common. Long runs: the pattern needs several leader changes in a row.
      return {
        ...base,
        flavor: 'figure8',
        faultTicks: random.range(300, 500),
        crashPerTick: 0,
        partitionPerTick: 0,
        downTicks: [1, 5],
        crashNewLeaderRate: 0.9,
        crashAfterCommitRate: 0.5,
        maxSizePerMsg: 1,
      };
    case 'crashVotes':
      // Elections all the time and members that crash and restart quickly in the middle of them.
      return {
        ...base,
        flavor: 'crashVotes',
        electionTicks: 3, faultTicks: random.range(150, 250),
        network: { ...base.network, delayMax: random.range(5, 20) },
        crashPerTick: 0.05 + random.float() * 0.1,
        downTicks: [0, random.range(2, 8)],
        crashAfterVoteRate: 0.3 + random.float() * 0.5,
        crashDuringFsyncRate: random.float() * 0.05,
        leaderBias: 0.9,
        partitionPerTick: 0.02 + random.float() * 0.03,
        partitionTicks: [3, 20],
        fsyncMaxUnits: random.range(0, 3),
      };
    case 'staleLeader':
      // The leader is cut off from its peers (not from clients) while its clock runs slow, so
      // it keeps believing it leads while the others elect a successor and take writes.
      return {
        ...base,
        flavor: 'staleLeader',
        network: { ...base.network, dropRate: 0, duplicateRate: 0, delayMax: random.range(2, 8) },
        crashPerTick: 0,
        leaderBias: 1,
        partitionPerTick: 0.03 + random.float() * 0.03,
        partitionTicks: [15, 40],
        skewPerTick: 0,
        keys: 1,
        clients: random.range(3, members + 3),
        thinkMaxUnits: random.range(3, 10),
        logReadShare: 0,
        giveUpTicks: random.range(30, 60),
      };
  }
}

export function describeSchedule(s: Schedule): string {
  const n = s.network;
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  return [
    `profile ${s.profile}${s.flavor === s.profile ? '' : ` (${s.flavor})`}: fault phase ${s.faultTicks} ticks, heal budget ${s.healTicks} ticks`,
    `network drop ${pct(n.dropRate)} dup ${pct(n.duplicateRate)} delay ${n.delayMin}..${n.delayMax}u spikes ${pct(n.spikeRate)} up to ${n.spikeMax}u`,
    `crash ${pct(s.crashPerTick)}/tick down ${s.downTicks[0]}..${s.downTicks[1]} ticks; partition ${pct(s.partitionPerTick)}/tick for ${s.partitionTicks[0]}..${s.partitionTicks[1]} ticks; leader bias ${pct(s.leaderBias)}`,
    `clock skew ${pct(s.skewPerTick)}/tick in ${s.tickUnitsRange[0]}..${s.tickUnitsRange[1]}u/tick; transfers ${pct(s.transferPerTick)}/tick; fsync 0..${s.fsyncMaxUnits}u; crash after a vote ${pct(s.crashAfterVoteRate)}, new leader crash ${pct(s.crashNewLeaderRate)}, crash after commit ${pct(s.crashAfterCommitRate)}, crash in fsync ${pct(s.crashDuringFsyncRate)}`,
    `conf changes ${s.confChanges}; ${s.maxSizePerMsg} bytes per append`,
    `snapshot every ${s.snapshotEveryEntries} entries keeping ${s.keepEntries}; ${s.clients} clients on ${s.keys} keys, attempt timeout ${s.attemptTimeoutTicks} ticks, give up after ${s.giveUpTicks} ticks, log reads ${pct(s.logReadShare)}`,
  ].join('\n  ');
}
