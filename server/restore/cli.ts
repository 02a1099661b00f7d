/**
 * `gavel snapshot restore FILE ...` and `gavel snapshot status FILE`: the backup commands of the
 * gavel binary (etcdutl's / etcdctl 3.4's `snapshot restore` and `snapshot status`, for gavel's
 * backup files: `etcdctl snapshot status` expects etcd's bbolt database and cannot read them).
 * Returns the exit code: 0 done, 1 refused (bad file, data dir in the way), 2 usage.
 */
import { UsageError } from '../config.js';
import { GavelError } from '../errors.js';
import { parseRestoreArgs, parseStatusArgs, type OutputFormat } from './options.js';
import { restoreSnapshot } from './restore.js';
import { readSnapshotFile, type SnapshotSummary } from './snapshot-file.js';

const USAGE = `usage:
  gavel snapshot restore FILE [--name NAME] [--data-dir DIR] [--initial-cluster NAME=PEER-URL,...]
                              [--initial-cluster-token TOKEN] [--initial-advertise-peer-urls URLS]
                              [--skip-hash-check]
  gavel snapshot status FILE [--write-out simple|json|table]`;

interface Output {
  out(text: string): void;
  err(text: string): void;
}

export async function runSnapshotCommand(argv: readonly string[], output: Output): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'restore') return await restore(rest, output);
    if (command === 'status') return await status(rest, output);
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      output.out(USAGE);
      return command === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown snapshot command '${command}'`);
  } catch (error) {
    if (error instanceof UsageError) {
      output.err(`gavel: ${error.message}\n${USAGE}`);
      return 2;
    }
    if (error instanceof GavelError || isFileError(error)) {
      output.err(`gavel: snapshot ${command ?? ''}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

async function restore(argv: readonly string[], output: Output): Promise<number> {
  const options = parseRestoreArgs(argv);
  const { summary, plan, dataDir } = await restoreSnapshot(options);
  output.out(
    `restored snapshot ${options.file} (revision ${summary.revision}, ${summary.records} records, sha256 ${summary.sha256}) into ${dataDir}\n` +
      `member ${options.config.name} ${plan.identity.memberId.toString(16)} of new cluster ${plan.identity.clusterId.toString(16)}: ` +
      plan.members.map((member) => `${member.name}=${member.peerUrls.join(',')}`).join(' '),
  );
  return 0;
}

async function status(argv: readonly string[], output: Output): Promise<number> {
  const options = parseStatusArgs(argv);
  const summary = await readSnapshotFile(options.file, { checkDigest: true });
  output.out(formatStatus(summary, options.format));
  return 0;
}

/** etcdctl's columns (hash, revision, total keys, total size), with gavel's hash: the SHA-256 trailer. */
export function formatStatus(summary: SnapshotSummary, format: OutputFormat): string {
  const hash = summary.sha256.slice(0, 8);
  switch (format) {
    case 'simple':
      return `${hash}, ${summary.revision}, ${summary.records}, ${humanBytes(summary.sizeBytes)}`;
    case 'json':
      return JSON.stringify({ hash: summary.sha256, revision: summary.revision, compactRevision: summary.compactedRevision, appliedIndex: summary.appliedIndex, totalKey: summary.records, kvRecords: summary.kvRecords, leases: summary.leases, totalSize: summary.sizeBytes });
    case 'table':
      return table(['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'], [hash, String(summary.revision), String(summary.records), humanBytes(summary.sizeBytes)]);
  }
}

/** Sizes as etcdctl prints them (go-humanize's SI units: 25 kB, 2.1 MB). */
export function humanBytes(bytes: number): string {
  if (bytes < 10) return `${bytes} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  const exponent = Math.min(Math.floor(Math.log(bytes) / Math.log(1000)), units.length - 1);
  const value = bytes / 1000 ** exponent;
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)} ${units[exponent]}`;
}

function table(headers: readonly string[], row: readonly string[]): string {
  const widths = headers.map((header, i) => Math.max(header.length, (row[i] ?? '').length));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const cells = (values: readonly string[]): string => `|${values.map((v, i) => ` ${v.padStart(widths[i]!)} `).join('|')}|`;
  return [line, cells(headers), line, cells(row), line].join('\n');
}

function isFileError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && (error as NodeJS.ErrnoException).syscall !== undefined;
}
