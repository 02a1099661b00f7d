// Goal: the fault test can fail — members started with GAVEL_UNSAFE_LOCAL_READS=1 (reads served
// from local state, without a read barrier) produce stale reads that the linearizability
// checker reports, and members started with GAVEL_UNSAFE_SKIP_FENCE=1 (fenced Txns run without
// their compare) let a stale lock holder's append commit, which the fencing checker reports.
import { afterAll, describe, expect, it } from 'vitest';
import { stopAllClusters } from '../helpers/cluster.js';
import { formatReport, type FaultReport } from './report.js';
import { defaultWorkloads, lockWorkload, runFaultTest } from './run.js';

afterAll(stopAllClusters);

const ATTEMPTS = 3;
const LINEARIZABILITY = 'linearizability (register)';
const FENCING = 'fencing (tokens rise in log order, no stale holder commits)';

describe('broken server', () => {
  it('is caught by the linearizability checker', async () => {
    // Followers answer reads before they apply what the leader committed (they learn the commit
    // index a heartbeat later), and a follower paused for seconds answers from older state still:
    // pausing followers and reading half the time makes stale reads certain within seconds.
    const reports: FaultReport[] = [];
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      const { report } = await runFaultTest({
        seed: 1_000 + attempt,
        durationMs: 8_000,
        members: 3,
        profile: 'pause-followers',
        env: { GAVEL_UNSAFE_LOCAL_READS: '1' },
        settleMs: 1_000,
        workloads: defaultWorkloads({ register: { readShare: 0.5 } }),
      });
      reports.push(report);
      if (report.verdicts.find((verdict) => verdict.checker === LINEARIZABILITY)?.valid === false) break;
    }
    const last = reports[reports.length - 1] as FaultReport;
    const text = formatReport(last);
    console.log(`caught after ${reports.length} run(s)\n${text}`);
    expect(last.verdicts.find((verdict) => verdict.checker === LINEARIZABILITY)?.valid, text).toBe(false);
    expect(last.violations, text).toBeGreaterThan(0);
    expect(last.replayCommand).toContain('--unsafe-local-reads');
  }, 150_000);

  it('is caught by the fencing checker', async () => {
    // No faults needed: half the holders play a stale holder (revoke their own session in the
    // critical section, wait for the next holder's grant, append again). Without the fence those
    // appends commit after a higher token was granted, or after it was appended.
    const { report } = await runFaultTest({
      seed: 2_000,
      durationMs: 6_000,
      members: 3,
      profile: 'none',
      env: { GAVEL_UNSAFE_SKIP_FENCE: '1' },
      settleMs: 1_000,
      workloads: [lockWorkload({ staleShare: 0.5 })],
    });
    const text = formatReport(report);
    console.log(text);
    const fencing = report.verdicts.find((verdict) => verdict.checker === FENCING);
    expect(fencing?.valid, text).toBe(false);
    expect(fencing?.details.join('\n'), text).toMatch(/stale append committed/);
    expect(report.replayCommand).toContain('--unsafe-skip-fence');
  }, 90_000);
});
