// Goal: the command line accepts etcd's flag forms with DESIGN.md's defaults and rejects anything unknown with a clear message.
import { describe, expect, it } from 'vitest';
import { autoCompactionOf, defaultConfig, helpText, parseArgs, UsageError } from '../../server/config.js';

function run(argv: string[]) {
  const parsed = parseArgs(argv);
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`);
  return parsed.config;
}

describe('flags', () => {
  it('defaults to a member on 127.0.0.1:2379 with data in ./default.gavel', () => {
    const config = run([]);
    expect(config.listenClientUrls.map(String)).toEqual(['http://127.0.0.1:2379/']);
    expect(config.dataDir).toBe('./default.gavel');
    expect(config.maxTxnOps).toBe(128);
    expect(config.maxRequestBytes).toBe(1.5 * 1024 * 1024);
    expect(config.heartbeatIntervalMs).toBe(100);
    expect(config.electionTimeoutMs).toBe(1000);
    // As etcd: no metrics listener of its own (the client port serves /metrics), so members share a host.
    expect(config.listenMetricsUrls).toEqual([]);
    expect(run(['--listen-metrics-urls', 'http://127.0.0.1:2381']).listenMetricsUrls.map(String)).toEqual(['http://127.0.0.1:2381/']);
  });

  it('takes --flag value and --flag=value', () => {
    const config = run(['--name', 'n1', '--data-dir=/tmp/x', '--max-txn-ops', '4', '--listen-client-urls=http://127.0.0.1:0,http://[::1]:0']);
    expect(config.name).toBe('n1');
    expect(config.dataDir).toBe('/tmp/x');
    expect(config.maxTxnOps).toBe(4);
    expect(config.listenClientUrls).toHaveLength(2);
    // The advertised URLs follow the listen URLs when not given, as etcd does.
    expect(config.advertiseClientUrls).toEqual(config.listenClientUrls);
  });

  it('rejects unknown flags, missing values and bad numbers', () => {
    expect(() => run(['--no-such-flag', '1'])).toThrow(new UsageError('unknown flag: --no-such-flag (see --help)'));
    expect(() => run(['--name'])).toThrow(/flag needs an argument: --name/);
    expect(() => run(['--max-txn-ops', 'many'])).toThrow(/expected a whole number/);
    expect(() => run(['--max-txn-ops', '0'])).toThrow(/must be at least 1/);
    expect(() => run(['--listen-client-urls', 'unix:///x'])).toThrow(/scheme must be http/);
    expect(() => run(['--heartbeat-interval', '500'])).toThrow(/at least 5 times/);
  });

  it('answers --help with every flag and its default', () => {
    expect(parseArgs(['--help']).kind).toBe('help');
    const text = helpText();
    for (const flag of ['--name', '--data-dir', '--listen-client-urls', '--advertise-client-urls', '--max-request-bytes', '--max-txn-ops']) {
      expect(text).toContain(flag);
    }
    expect(text).toContain(String(defaultConfig().maxTxnOps));
  });

  it('turns auto-compaction on by default (periodic, 5 minutes) and takes etcd\'s modes and retentions', () => {
    expect(autoCompactionOf(run([]))).toEqual({ mode: 'periodic', retentionMs: 5 * 60_000 });
    expect(autoCompactionOf(run(['--auto-compaction-retention', '0']))).toBeUndefined();
    expect(autoCompactionOf(run(['--auto-compaction-retention', '2']))).toEqual({ mode: 'periodic', retentionMs: 2 * 3_600_000 });
    expect(autoCompactionOf(run(['--auto-compaction-mode', 'revision', '--auto-compaction-retention=1000']))).toEqual({ mode: 'revision', retentionRevisions: 1000 });
  });

  it("refuses bad auto-compaction values at start, as etcd does, with etcd's messages", () => {
    expect(() => run(['--auto-compaction-retention', 'abc'])).toThrow(new UsageError('error parsing CompactionRetention: time: invalid duration "abc"'));
    expect(() => run(['--auto-compaction-mode', 'hourly'])).toThrow(new UsageError('unknown auto-compaction-mode "hourly"'));
    // gavel's default retention is a duration: revision mode must say how many revisions.
    expect(() => run(['--auto-compaction-mode', 'revision'])).toThrow(/needs --auto-compaction-retention/);
  });

  it('takes --quota-backend-bytes 0 (the default), a size, or a negative number (no quota)', () => {
    expect(run([]).quotaBackendBytes).toBe(0);
    expect(run(['--quota-backend-bytes', '16777216']).quotaBackendBytes).toBe(16 * 1024 * 1024);
    expect(run(['--quota-backend-bytes', '-1']).quotaBackendBytes).toBe(-1);
    expect(() => run(['--quota-backend-bytes', '2GB'])).toThrow(/expected a whole number/);
    // Only this flag takes a sign.
    expect(() => run(['--max-txn-ops', '-1'])).toThrow(/expected a whole number/);
  });

  it('documents the auto-compaction and quota flags in --help', () => {
    const text = helpText();
    for (const flag of ['--auto-compaction-mode', '--auto-compaction-retention', '--quota-backend-bytes']) expect(text).toContain(flag);
    expect(text).toContain('(default: 5m)');
  });
});
