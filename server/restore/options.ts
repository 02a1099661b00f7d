/**
 * The flags of `gavel snapshot restore` and `gavel snapshot status` (pure parsing).
 *
 * restore takes etcdutl's / etcdctl 3.4's flags: --name, --data-dir, --initial-cluster,
 * --initial-cluster-token, --initial-advertise-peer-urls and --skip-hash-check. The member flags
 * among them go through the member's own parser (config.ts), so they mean, default and validate
 * exactly as when the member starts: --data-dir defaults to gavel's, ./default.gavel.
 */
import { parseArgs, UsageError, type Config } from '../config.js';

/** The member flags restore takes, by name (etcd's restore flags that gavel has). */
const MEMBER_FLAGS: ReadonlySet<string> = new Set(['name', 'data-dir', 'initial-cluster', 'initial-cluster-token', 'initial-advertise-peer-urls']);

export interface RestoreOptions {
  readonly file: string;
  /** The member flags as a Config (name, dataDir, initialCluster, initialClusterToken, initialAdvertisePeerUrls). */
  readonly config: Config;
  /** --skip-hash-check: read the SHA-256 trailer but do not compare it (the file must still be whole). */
  readonly skipHashCheck: boolean;
}

export type OutputFormat = 'simple' | 'json' | 'table';

export interface StatusOptions {
  readonly file: string;
  readonly format: OutputFormat;
}

export function parseRestoreArgs(argv: readonly string[]): RestoreOptions {
  const memberArgs: string[] = [];
  let skipHashCheck = false;
  const files = scanArgs(argv, (name, inline, next) => {
    if (name === 'skip-hash-check') {
      skipHashCheck = parseBool(name, inline ?? 'true');
    } else if (MEMBER_FLAGS.has(name)) {
      memberArgs.push(`--${name}=${inline ?? next()}`);
    } else if (name === 'wal-dir') {
      throw new UsageError('--wal-dir is not supported: gavel keeps its write-ahead log under --data-dir');
    } else {
      throw new UsageError(`unknown flag for snapshot restore: --${name}`);
    }
  });
  const file = onlyFile(files, 'restore');
  const parsed = parseArgs(memberArgs);
  if (parsed.kind !== 'run') throw new UsageError('snapshot restore takes no --help or --version');
  return { file, config: parsed.config, skipHashCheck };
}

export function parseStatusArgs(argv: readonly string[]): StatusOptions {
  let format: OutputFormat = 'simple';
  const files = scanArgs(argv, (name, inline, next) => {
    if (name !== 'write-out' && name !== 'w') throw new UsageError(`unknown flag for snapshot status: --${name}`);
    const given = inline ?? next();
    if (given !== 'simple' && given !== 'json' && given !== 'table') throw new UsageError(`--write-out must be simple, json or table, not "${given}"`);
    format = given;
  });
  return { file: onlyFile(files, 'status'), format };
}

/**
 * Walks argv: positional arguments are returned, each flag goes to onFlag with its `=value` (if
 * any) and next(), which takes the following argument as its value.
 */
function scanArgs(argv: readonly string[], onFlag: (name: string, inline: string | undefined, next: () => string) => void): string[] {
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('-')) {
      positional.push(arg);
      continue;
    }
    const { name, value } = splitFlag(arg);
    onFlag(name, value, () => {
      const given = argv[++i];
      if (given === undefined) throw new UsageError(`flag needs an argument: --${name}`);
      return given;
    });
  }
  return positional;
}

function splitFlag(arg: string): { name: string; value: string | undefined } {
  const body = arg.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return eq >= 0 ? { name: body.slice(0, eq), value: body.slice(eq + 1) } : { name: body, value: undefined };
}

function parseBool(name: string, raw: string): boolean {
  if (['true', 't', '1'].includes(raw.toLowerCase())) return true;
  if (['false', 'f', '0'].includes(raw.toLowerCase())) return false;
  throw new UsageError(`invalid value "${raw}" for --${name}: expected true or false`);
}

function onlyFile(files: readonly string[], command: string): string {
  if (files.length !== 1 || files[0] === '') throw new UsageError(`snapshot ${command} needs exactly one snapshot file (got ${files.length})`);
  return files[0]!;
}
