/** What the benchmarks read about a member from outside: its memory (Linux /proc) and its data dir's size on disk. */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemoryFigures {
  /** VmRSS: resident now. */
  rssBytes: number;
  /** RssAnon: the resident part that is not a file mapping (heap, stacks); etcd's bbolt mmap is file-backed. */
  anonBytes: number;
  /** VmHWM: the largest VmRSS of the process's life. */
  peakBytes: number;
}

/** Reads /proc/<pid>/status; undefined if the process is gone. */
export function memoryOf(pid: number): MemoryFigures | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  };
  return { rssBytes: field('VmRSS'), anonBytes: field('RssAnon'), peakBytes: field('VmHWM') };
}

/** Bytes allocated on disk under dir (st_blocks, as `du`); files that vanish meanwhile count 0. Bounded by FILES_MAX. */
export function diskUsageBytes(dir: string): number {
  const FILES_MAX = 100_000;
  let total = 0;
  let visited = 0;
  const pending = [dir];
  while (pending.length > 0 && visited < FILES_MAX) {
    const path = pending.pop() as string;
    visited += 1;
    try {
      const stat = lstatSync(path);
      total += stat.blocks * 512;
      if (stat.isDirectory()) for (const name of readdirSync(path)) pending.push(join(path, name));
    } catch {
      // deleted between readdir and stat (level compactions, WAL segments)
    }
  }
  return total;
}

export function megabytes(bytes: number | undefined): string {
  return bytes === undefined || Number.isNaN(bytes) ? '-' : (bytes / 2 ** 20).toFixed(0);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
