/** The benchmarks' printed frame: the command and machine they ran on, and plain column tables. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { ETCD_BIN, repoRoot, type Target } from '../helpers/gavel.js';

/** The command line, the machine, its load average now, and the servers' versions. */
export function printPreamble(targets: readonly Target[]): void {
  const cpuList = cpus();
  process.stdout.write(`command: ${process.argv.map((arg) => (/\s/.test(arg) ? JSON.stringify(arg) : arg)).join(' ')}\n`);
  process.stdout.write(`machine: ${cpuList.length} cores (${cpuList[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${platform()} ${release()}, node ${process.version}; ${loadAverage()}\n`);
  process.stdout.write(`servers: ${targets.map(serverVersion).join('; ')}\n`);
}

export function loadAverage(): string {
  return `load average ${loadavg().map((value) => value.toFixed(2)).join(', ')}`;
}

export function serverVersion(target: Target): string {
  try {
    if (target === 'etcd') return execFileSync(ETCD_BIN, ['--version'], { encoding: 'utf8', timeout: 10_000 }).split('\n')[0]?.trim() ?? 'etcd';
    const pkg: unknown = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8'));
    const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot(), encoding: 'utf8', timeout: 10_000 }).trim();
    return `gavel ${typeof version === 'string' ? version : '?'} (${commit})`;
  } catch {
    return target;
  }
}

/** A table: the first `textColumns` columns left-aligned, the rest right-aligned. */
export function printColumns(header: readonly string[], lines: readonly (readonly string[])[], textColumns = 1): void {
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)));
  const format = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column < textColumns ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ').trimEnd();
  process.stdout.write(`${format(header)}\n${widths.map((width) => '-'.repeat(width)).join('  ')}\n`);
  for (const line of lines) process.stdout.write(`${format(line)}\n`);
}

export function milliseconds(value: number | undefined, digits = 1): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);
}

/** `1,000,000` */
export function count(value: number): string {
  return value.toLocaleString('en-US');
}

/** Progress on stderr, so stdout holds only the report. */
export function progress(text: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}
