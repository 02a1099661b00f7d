/**
 * The simulator's command line (`npm run test:sim -- ...`):
 *   --seeds N        run seeds start..start+N-1 (default 1000) and print a summary
 *   --start S        first seed (default 1)
 *   --seed N         replay one seed (add --verbose for a trace, --verbose 2 for messages)
 *   --members 3|5    cluster size (default 3)
 *   --faults <v>     switch on a broken core variant: commitOldTermEntries | forgetVote |
 *                    grantVoteToShorterLog | readIndexWithoutHeartbeat
 *   --profile <p>    fault schedule: swarm | churn | crashVotes | staleLeader (default: swarm,
 *                    or the variant's targeted profile with --faults)
 *   --stop-on-failure  stop at the first failing seed
 * Exit code 1 on any violation.
 */
import { FAULT_VARIANTS, PROFILES, TICK_UNITS, type FaultVariant, type ProfileName } from './schedule.js';
import { runSimulation, type SimOptions, type SimResult } from './simulator.js';

interface CliOptions {
  seeds: number;
  start: number;
  seed: number | undefined;
  members: number;
  faults: FaultVariant | undefined;
  profile: ProfileName | undefined;
  verbose: number;
  stopOnFailure: boolean;
}

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { seeds: 1000, start: 1, seed: undefined, members: 3, faults: undefined, profile: undefined, verbose: 0, stopOnFailure: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) usage(`${arg} needs a value`);
      return next;
    };
    const integer = (): number => {
      const text = value();
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 0) usage(`${arg}: not a non-negative integer: ${text}`);
      return n;
    };
    switch (arg) {
      case '--seeds': options.seeds = integer(); break;
      case '--start': options.start = integer(); break;
      case '--seed': options.seed = integer(); break;
      case '--members': {
        const n = integer();
        if (n !== 3 && n !== 5) usage('--members must be 3 or 5');
        options.members = n;
        break;
      }
      case '--faults': {
        const v = value();
        if (!(FAULT_VARIANTS as readonly string[]).includes(v)) usage(`--faults must be one of ${FAULT_VARIANTS.join(', ')}`);
        options.faults = v as FaultVariant;
        break;
      }
      case '--profile': {
        const v = value();
        if (!(PROFILES as readonly string[]).includes(v)) usage(`--profile must be one of ${PROFILES.join(', ')}`);
        options.profile = v as ProfileName;
        break;
      }
      case '--verbose': {
        const next = argv[i + 1];
        options.verbose = next !== undefined && /^\d+$/.test(next) ? (i++, Number(next)) : 1;
        break;
      }
      case '--stop-on-failure': options.stopOnFailure = true; break;
      case '--help': case '-h': usage(); break;
      default: usage(`unknown option ${arg}`);
    }
  }
  return options;
}

function usage(error?: string): never {
  if (error !== undefined) console.error(`test:sim: ${error}`);
  console.error('usage: npm run test:sim -- [--seeds N] [--start S] [--seed N [--verbose [2]]] [--members 3|5] [--faults <variant>] [--profile <profile>] [--stop-on-failure]');
  process.exit(error === undefined ? 0 : 2);
}

function simOptions(cli: CliOptions, seed: number): SimOptions {
  return {
    seed,
    members: cli.members,
    verbose: cli.verbose,
    ...(cli.faults === undefined ? {} : { faults: cli.faults }),
    ...(cli.profile === undefined ? {} : { profile: cli.profile }),
  };
}

function reportFailure(result: SimResult): void {
  const v = result.violation!;
  console.log(`FAIL seed ${result.seed}: ${v.kind} at tick ${(v.time / TICK_UNITS).toFixed(1)}: ${v.message}`);
  console.log(`  replay: ${result.replay}`);
  console.log(`  trace:  ${result.replay} --verbose`);
}

function main(): void {
  const cli = parseArgs(process.argv.slice(2));
  if (cli.seed !== undefined) {
    const result = runSimulation(simOptions(cli, cli.seed));
    if (result.ok) {
      const s = result.stats;
      console.log(`ok seed ${result.seed}: ${s.ticks} ticks, ${s.messages} messages (${s.dropped} lost), ${s.crashes} crashes, ${s.partitions} partitions, ${s.elections} elections, ${s.confChanges} conf changes, ${s.operations} ops (${s.indeterminate} indeterminate)${s.checkerUnknown ? ', linearizability UNKNOWN (budget)' : ''}`);
    } else {
      reportFailure(result);
    }
    process.exit(result.ok ? 0 : 1);
  }
  const started = performance.now();
  const failures: SimResult[] = [];
  const unknown: number[] = [];
  let operations = 0;
  let ticks = 0;
  let ran = 0;
  for (let seed = cli.start; seed < cli.start + cli.seeds; seed++) {
    const result = runSimulation(simOptions(cli, seed));
    ran++;
    operations += result.stats.operations;
    ticks += result.stats.ticks;
    if (result.stats.checkerUnknown) unknown.push(seed);
    if (!result.ok) {
      failures.push(result);
      reportFailure(result);
      if (cli.stopOnFailure) break;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const variant = cli.faults === undefined ? '' : `, broken core: ${cli.faults}`;
  console.log(`\n${ran} seeds (${cli.start}..${cli.start + ran - 1}), ${cli.members} members${variant}: ${ran - failures.length} ok, ${failures.length} failed`);
  console.log(`${seconds.toFixed(1)} s, ${(ran / seconds).toFixed(1)} seeds/s, ${ticks} ticks, ${operations} client ops checked`);
  if (unknown.length > 0) console.log(`linearizability unknown (search budget exceeded) in ${unknown.length} seeds: ${unknown.slice(0, 10).join(', ')}`);
  if (failures.length > 0) {
    const kinds = new Map<string, number>();
    for (const f of failures) kinds.set(f.violation!.kind, (kinds.get(f.violation!.kind) ?? 0) + 1);
    console.log(`violations: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    console.log(`first failing seed: ${failures[0]!.replay}`);
  }
  process.exit(failures.length > 0 ? 1 : 0);
}

main();
