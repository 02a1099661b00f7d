/** Command-line parsing shared by the benchmarks: `--flag value` or `--flag=value`, unknown flags refused. */
import type { Target } from '../helpers/gavel.js';

export type FlagHandlers = Record<string, (value: () => string) => void>;

export function parseFlags(argv: readonly string[], handlers: FlagHandlers, usage: string): void {
  for (let index = 0; index < argv.length; index += 1) {
    const [flag, inline] = (argv[index] ?? '').split('=', 2) as [string, string | undefined];
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    const handler = handlers[flag];
    if (handler === undefined) throw new Error(`unknown option ${flag}`);
    handler(() => {
      const next = inline ?? argv[++index];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    });
  }
}

export function positive(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag} must be a positive number, got ${text}`);
  return value;
}

export function target(text: string): Target {
  if (text !== 'gavel' && text !== 'etcd') throw new Error(`--target must be gavel or etcd, got ${text}`);
  return text;
}

/** `gavel`, `etcd`, or `both` (gavel first: the tables put it on the left). */
export function targets(text: string): Target[] {
  if (text === 'both') return ['gavel', 'etcd'];
  if (text !== 'gavel' && text !== 'etcd') throw new Error(`--target must be gavel, etcd or both, got ${text}`);
  return [text];
}

export function integer(flag: string, text: string): number {
  const value = positive(flag, text);
  if (!Number.isSafeInteger(value)) throw new Error(`${flag} must be a positive integer, got ${text}`);
  return value;
}

export function integerList(flag: string, text: string): number[] {
  return text.split(',').map((part) => integer(flag, part));
}

export function oneOf<T extends string>(flag: string, text: string, values: readonly T[]): T {
  const found = values.find((value) => value === text);
  if (found === undefined) throw new Error(`${flag} must be one of ${values.join(', ')}, got ${text}`);
  return found;
}
