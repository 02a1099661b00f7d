// Goal: a 20-second fault run (3 members, a fixed seed whose schedule pauses and kills the
// leader and kills a random member) of the four workloads (register, lock with fencing,
// election, set) ends with every checker passing and real work done.
import { afterAll, describe, expect, it } from 'vitest';
import { stopAllClusters } from '../helpers/cluster.js';
import { formatReport } from './report.js';
import { runFaultTest } from './run.js';

afterAll(stopAllClusters);

/** Seed 8 over 20 s: pause the leader 6 s, kill -9 the leader, kill -9 a random member. */
const SEED = 8;
/**
 * Acknowledged ops each workload must reach: "real work done". A lock turn and a leadership
 * take hundreds of ms by design (one holder or leader at a time), so those counts are lower.
 */
const MIN_OK: Readonly<Record<string, number>> = { register: 100, lock: 50, election: 15, set: 100 };

describe('fault test', () => {
  it('keeps every safety property under kill -9 and pauses (20 s, 3 members)', async () => {
    const { report } = await runFaultTest({ seed: SEED, durationMs: 20_000, members: 3 });
    const text = formatReport(report);
    console.log(text);
    expect(report.violations, text).toBe(0);
    expect(report.unknown, text).toBe(0);
    expect(report.faults.length, text).toBeGreaterThanOrEqual(2);
    expect(report.workloads.map((workload) => workload.name).sort(), text).toEqual(Object.keys(MIN_OK).sort());
    for (const workload of report.workloads) expect(workload.outcomes.ok, `${workload.name}\n${text}`).toBeGreaterThan(MIN_OK[workload.name] ?? 0);
  }, 90_000);
});
