/**
 * The fault test's command line (`npm run test:fault -- ...`):
 *   --seed N              nemesis seed (default: random, printed); the seed replays the schedule
 *   --duration S          seconds of nemesis before the heal (default 60)
 *   --members 3|5         cluster size (default 3)
 *   --profile P           nemesis profile: mixed (default) | pause-followers | none
 *   --unsafe-local-reads  start the members with GAVEL_UNSAFE_LOCAL_READS=1 (a broken server:
 *                         the checkers must report a violation)
 *   --unsafe-skip-fence   start the members with GAVEL_UNSAFE_SKIP_FENCE=1 (a broken server that
 *                         ignores the fence of fenced Txns: the fencing checker must object)
 *   --history FILE        also write the histories and the report as JSON to FILE
 *   --logs DIR            write every member's output to DIR/<name>.log
 *   --quiet               no progress lines, only the report
 * Exit code 0 when every checker passes, 1 on any violation, 3 when a checker could not decide
 * (search budget), 2 on a usage error or a harness failure.
 */
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { describePlannedFault, NEMESIS_PROFILES, planNemesis, type NemesisProfile } from './nemesis.js';
import { formatReport } from './report.js';
import { runFaultTest } from './run.js';

interface CliOptions {
  seed: number;
  durationS: number;
  members: 3 | 5;
  profile: NemesisProfile;
  unsafeLocalReads: boolean;
  unsafeSkipFence: boolean;
  history: string | undefined;
  logs: string | undefined;
  quiet: boolean;
}

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { seed: randomInt(1, 2 ** 31), durationS: 60, members: 3, profile: 'mixed', unsafeLocalReads: false, unsafeSkipFence: false, history: undefined, logs: undefined, quiet: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) usage(`${arg} needs a value`);
      return next;
    };
    const integer = (min: number): number => {
      const text = value();
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < min) usage(`${arg}: not an integer >= ${min}: ${text}`);
      return n;
    };
    switch (arg) {
      case '--seed': options.seed = integer(0); break;
      case '--duration': options.durationS = integer(1); break;
      case '--members': {
        const n = integer(1);
        if (n !== 3 && n !== 5) usage('--members must be 3 or 5');
        options.members = n;
        break;
      }
      case '--profile': {
        const p = value();
        if (!(NEMESIS_PROFILES as readonly string[]).includes(p)) usage(`--profile must be one of ${NEMESIS_PROFILES.join(', ')}`);
        options.profile = p as NemesisProfile;
        break;
      }
      case '--unsafe-local-reads': options.unsafeLocalReads = true; break;
      case '--unsafe-skip-fence': options.unsafeSkipFence = true; break;
      case '--history': options.history = value(); break;
      case '--logs': options.logs = value(); break;
      case '--quiet': options.quiet = true; break;
      case '--help': case '-h': usage(); break;
      default: usage(`unknown option ${arg}`);
    }
  }
  return options;
}

function usage(error?: string): never {
  if (error !== undefined) console.error(`test:fault: ${error}`);
  console.error('usage: npm run test:fault -- [--seed N] [--duration S] [--members 3|5] [--profile mixed|pause-followers|none] [--unsafe-local-reads] [--unsafe-skip-fence] [--history FILE] [--logs DIR] [--quiet]');
  process.exit(error === undefined ? 0 : 2);
}

/** The broken-server switches for the members' environment. */
function unsafeEnv(cli: CliOptions): Record<string, string> {
  const env: Record<string, string> = {};
  if (cli.unsafeLocalReads) env['GAVEL_UNSAFE_LOCAL_READS'] = '1';
  if (cli.unsafeSkipFence) env['GAVEL_UNSAFE_SKIP_FENCE'] = '1';
  return env;
}

async function main(): Promise<number> {
  const cli = parseArgs(process.argv.slice(2));
  const durationMs = cli.durationS * 1000;
  const log = cli.quiet ? undefined : (line: string): void => console.log(line);
  const plan = planNemesis({ seed: cli.seed, members: cli.members, durationMs, profile: cli.profile });
  const broken = `${cli.unsafeLocalReads ? ', UNSAFE LOCAL READS (broken server)' : ''}${cli.unsafeSkipFence ? ', UNSAFE SKIP FENCE (broken server)' : ''}`;
  console.log(`seed ${cli.seed}: ${cli.members} members, ${cli.durationS} s of nemesis (${cli.profile}), ${plan.faults.length} faults planned${broken}`);
  if (!cli.quiet) for (const fault of plan.faults) console.log(`  planned: ${describePlannedFault(fault)}`);
  const { report, histories } = await runFaultTest({
    seed: cli.seed,
    durationMs,
    members: cli.members,
    profile: cli.profile,
    ...(cli.unsafeLocalReads || cli.unsafeSkipFence ? { env: unsafeEnv(cli) } : {}),
    ...(log === undefined ? {} : { log }),
    ...(cli.logs === undefined ? {} : { logDir: cli.logs }),
  });
  console.log('');
  console.log(formatReport(report, { plan }));
  if (cli.history !== undefined) {
    writeFileSync(cli.history, JSON.stringify({ report, histories }, null, 1));
    console.log(`histories written to ${cli.history}`);
  }
  return report.violations > 0 ? 1 : report.unknown > 0 ? 3 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`test:fault: the harness failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    process.exit(2);
  },
);
