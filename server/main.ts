#!/usr/bin/env node
/**
 * The `gavel` command: parse etcd-style flags, run one member (or, with --mode central, the central
 * coordinator) until SIGTERM/SIGINT; or `gavel snapshot restore|status`, the backup commands.
 */
import { readFileSync } from 'node:fs';
import { helpText, parseArgs, UsageError } from './config.js';
import { createLogger } from './log.js';
import { Member } from './server.js';
import { CentralCoordinator } from './central/central-server.js';
import { runSnapshotCommand } from './restore/cli.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function main(argv: readonly string[]): Promise<number> {
  // `gavel snapshot restore|status ...`: the backup commands, not a member (server/restore/).
  if (argv[0] === 'snapshot') {
    return runSnapshotCommand(argv.slice(1), {
      out: (text) => process.stdout.write(`${text}\n`),
      err: (text) => process.stderr.write(`${text}\n`),
    });
  }
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`gavel: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(helpText() + '\n');
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`gavel ${packageVersion()}\n`);
    return 0;
  }
  const config = parsed.config;
  const logger = createLogger(config.logLevel, { member: config.name });
  // Node's own warnings go through the logger so stderr stays JSON lines. Deprecations are
  // debug: TLS to an IP-literal peer (https://127.0.0.1:2380) triggers DEP0123 in every process.
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    const fields = { name: warning.name, code: warning.code, message: warning.message };
    if (warning.name === 'DeprecationWarning') logger.debug('node warning', fields);
    else logger.warn('node warning', fields);
  });
  let member: Member | CentralCoordinator;
  let removed = false;
  let stopNow: (() => void) | undefined;
  try {
    member =
      config.mode === 'central'
        ? await CentralCoordinator.start(config, logger)
        : await Member.start(config, logger, {
            onRemoved: () => {
              removed = true;
              stopNow?.();
            },
          });
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`gavel: ${error.message}\n`);
      return 2;
    }
    logger.error('failed to start', { error: error instanceof Error ? error.message : String(error) });
    return 1;
  }
  await new Promise<void>((resolve) => {
    stopNow = resolve;
    const stop = (signal: string): void => {
      logger.info('shutting down', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await member.close();
  if (removed) logger.info('exiting: this member was removed from the cluster');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`gavel: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
