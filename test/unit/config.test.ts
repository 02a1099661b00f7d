// Goal: the command line accepts etcd's flag forms with DESIGN.md's defaults and rejects anything unknown with a clear message.
import { describe, expect, it } from 'vitest';
import { defaultConfig, helpText, parseArgs, UsageError } from '../../server/config.js';

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
});
