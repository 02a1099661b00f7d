/**
 * One Config with explicit defaults and validate(). Flag names are etcd's where the meaning is
 * the same, so scripts written for etcd keep working.
 */
import { parseAutoCompaction, type AutoCompactionSettings } from './mvcc/auto-compaction.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Config {
  /** 'member' (default): a Raft member. 'central': one coordinator process without consensus (server/central/). */
  readonly mode: 'member' | 'central';
  readonly name: string;
  readonly dataDir: string;
  readonly listenClientUrls: readonly URL[];
  readonly advertiseClientUrls: readonly URL[];
  readonly listenPeerUrls: readonly URL[];
  readonly initialAdvertisePeerUrls: readonly URL[];
  readonly initialCluster: string;
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly listenMetricsUrls: readonly URL[];
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotCount: number;
  readonly maxRequestBytes: number;
  readonly maxTxnOps: number;
  readonly maxPendingProposals: number;
  readonly maxWatchersPerStream: number;
  /** HTTP/2 streams one client connection may have open at once (each call is a stream). */
  readonly maxConcurrentStreams: number;
  readonly watchProgressNotifyIntervalMs: number;
  readonly leaseCheckpointIntervalMs: number;
  readonly logLevel: LogLevel;
  /** Lock names that get a `name` label of their own on the gavel_lock_* metrics (comma-separated); others count as "other". */
  readonly metricsLockNames: string;
  /** TLS (server/tls.ts): '' means not given. Client side: the client gRPC listeners (and https metrics). */
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustedCaFile: string;
  readonly clientCertAuth: boolean;
  /** Peer side: the peer listener and this member's connections to its peers. */
  readonly peerCertFile: string;
  readonly peerKeyFile: string;
  readonly peerTrustedCaFile: string;
  readonly peerClientCertAuth: boolean;
  /** --auth-token: 'simple', the only token type gavel issues (server/auth/tokens.ts). */
  readonly authToken: string;
  /** --auth-token-ttl: a simple token lives this long after its last use on a member. */
  readonly authTokenTtlSeconds: number;
  /** --auto-compaction-mode: 'periodic' or 'revision' (etcd's; checked by validate()). */
  readonly autoCompactionMode: string;
  /** --auto-compaction-retention as given: hours or a Go duration (periodic), revisions (revision); '0' = off. */
  readonly autoCompactionRetention: string;
  /** --quota-backend-bytes: 0 = etcd's default of 2 GiB, negative = no quota. */
  readonly quotaBackendBytes: number;
}

/** 'bool' follows Go's flag package, as etcd does: `--flag` alone is true, else `--flag=true|false`. */
type FlagKind = 'string' | 'urls' | 'int' | 'duration-ms' | 'enum' | 'bool';

interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly field: keyof Config;
  readonly help: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  /** 'int' only: a leading minus sign is allowed (--quota-backend-bytes -1 turns the quota off, as etcd). */
  readonly signed?: boolean;
}

const FLAGS: readonly FlagSpec[] = [
  {
    name: 'mode',
    kind: 'enum',
    field: 'mode',
    choices: ['member', 'central'],
    help: "'member': a Raft cluster member serving the etcd v3 API. 'central': ONE coordinator process without consensus, serving only the gavel.v1.Coordinator and Lease services (KV, Watch and the rest answer UNIMPLEMENTED); the simplest and fastest deployment, and a SINGLE POINT OF FAILURE (state is journaled in --data-dir, so a restart keeps holders and queues; the --*peer* and --initial-cluster* flags are ignored)",
  },
  { name: 'name', kind: 'string', field: 'name', help: 'human-readable name for this member' },
  { name: 'data-dir', kind: 'string', field: 'dataDir', help: 'path to the data directory' },
  { name: 'listen-client-urls', kind: 'urls', field: 'listenClientUrls', help: 'comma-separated URLs to listen on for client traffic: gRPC, and HTTP /version /metrics /health on the same port (port 0 picks a free port)' },
  { name: 'advertise-client-urls', kind: 'urls', field: 'advertiseClientUrls', help: 'comma-separated client URLs to advertise to the rest of the cluster' },
  { name: 'listen-peer-urls', kind: 'urls', field: 'listenPeerUrls', help: 'comma-separated URLs to listen on for peer traffic' },
  { name: 'initial-advertise-peer-urls', kind: 'urls', field: 'initialAdvertisePeerUrls', help: "this member's peer URLs to advertise to the rest of the cluster" },
  { name: 'initial-cluster', kind: 'string', field: 'initialCluster', help: 'initial cluster configuration for bootstrapping (name=peerURL,...)' },
  { name: 'initial-cluster-state', kind: 'enum', field: 'initialClusterState', choices: ['new', 'existing'], help: "initial cluster state ('new' or 'existing')" },
  { name: 'initial-cluster-token', kind: 'string', field: 'initialClusterToken', help: 'initial cluster token, to tell clusters apart' },
  { name: 'listen-metrics-urls', kind: 'urls', field: 'listenMetricsUrls', help: 'comma-separated extra URLs to serve /metrics, /health, /version on (every client URL serves them too, beside gRPC)' },
  { name: 'heartbeat-interval', kind: 'duration-ms', field: 'heartbeatIntervalMs', min: 1, help: 'time (in milliseconds) of a heartbeat interval' },
  { name: 'election-timeout', kind: 'duration-ms', field: 'electionTimeoutMs', min: 1, help: 'time (in milliseconds) for an election to timeout' },
  { name: 'snapshot-count', kind: 'int', field: 'snapshotCount', min: 1, help: 'number of committed entries that trigger a snapshot and log compaction' },
  { name: 'max-request-bytes', kind: 'int', field: 'maxRequestBytes', min: 1, help: 'maximum client request size in bytes the server will accept' },
  { name: 'max-txn-ops', kind: 'int', field: 'maxTxnOps', min: 1, help: 'maximum number of operations permitted in a transaction' },
  { name: 'max-pending-proposals', kind: 'int', field: 'maxPendingProposals', min: 1, help: "proposals waiting to commit before new ones get 'too many requests'" },
  { name: 'max-watchers-per-stream', kind: 'int', field: 'maxWatchersPerStream', min: 1, help: 'maximum watchers on one Watch stream' },
  { name: 'max-concurrent-streams', kind: 'int', field: 'maxConcurrentStreams', min: 1, help: 'maximum concurrent gRPC streams (calls) one client connection may have open; more are refused' },
  { name: 'watch-progress-notify-interval', kind: 'duration-ms', field: 'watchProgressNotifyIntervalMs', min: 1, help: 'interval (ms) of progress notifications to watchers that asked for them' },
  { name: 'lease-checkpoint-interval', kind: 'duration-ms', field: 'leaseCheckpointIntervalMs', min: 100, help: "how long (ms) a lease's remaining TTL may go unrecorded in the log before the leader records it again (bounds its life across leader changes)" },
  { name: 'log-level', kind: 'enum', field: 'logLevel', choices: ['debug', 'info', 'warn', 'error'], help: 'log level: debug, info, warn or error' },
  { name: 'cert-file', kind: 'string', field: 'certFile', help: 'path to the client server TLS cert file (PEM); needed for https client URLs' },
  { name: 'key-file', kind: 'string', field: 'keyFile', help: 'path to the client server TLS key file (PEM)' },
  { name: 'trusted-ca-file', kind: 'string', field: 'trustedCaFile', help: 'path to the client server TLS trusted CA cert file (PEM), which signs client certificates' },
  { name: 'client-cert-auth', kind: 'bool', field: 'clientCertAuth', help: 'refuse clients without a certificate signed by --trusted-ca-file' },
  { name: 'peer-cert-file', kind: 'string', field: 'peerCertFile', help: 'path to the peer TLS cert file (PEM), used as server and as client; needed for https peer URLs' },
  { name: 'peer-key-file', kind: 'string', field: 'peerKeyFile', help: 'path to the peer TLS key file (PEM)' },
  { name: 'peer-trusted-ca-file', kind: 'string', field: 'peerTrustedCaFile', help: "path to the peer TLS trusted CA file (PEM), which signs the peers' certificates" },
  { name: 'peer-client-cert-auth', kind: 'bool', field: 'peerClientCertAuth', help: 'refuse peers without a certificate signed by --peer-trusted-ca-file' },
  { name: 'auth-token', kind: 'string', field: 'authToken', help: "type of the tokens Authenticate issues: 'simple' (etcd's jwt is not supported)" },
  { name: 'auth-token-ttl', kind: 'int', field: 'authTokenTtlSeconds', min: 1, help: 'seconds a simple token stays valid after its last use' },
  {
    name: 'auto-compaction-mode',
    kind: 'string',
    field: 'autoCompactionMode',
    help: "'periodic': keep the history of the last --auto-compaction-retention (a duration); 'revision': keep the last --auto-compaction-retention revisions, compacting every 5 minutes. Only the leader compacts",
  },
  {
    name: 'auto-compaction-retention',
    kind: 'string',
    field: 'autoCompactionRetention',
    help: "history to keep: periodic mode takes a duration ('30m', '1h30m') or a bare number of hours; revision mode takes a number of revisions; '0' turns auto-compaction off (etcd's default). gavel's default keeps 5 minutes: longer than a lock session lives without keep-alives",
  },
  {
    name: 'quota-backend-bytes',
    kind: 'int',
    field: 'quotaBackendBytes',
    signed: true,
    help: 'raise the NOSPACE alarm and refuse writes when the database on disk would exceed this many bytes; 0 means the default of 2 GiB (etcd\'s), negative means no quota; above 8 GiB is allowed with a warning',
  },
  { name: 'metrics-lock-names', kind: 'string', field: 'metricsLockNames', help: 'comma-separated lock names that get their own name label on the gavel_lock_* metrics (others count as "other"; keeps label cardinality bounded)' },
];

export function defaultConfig(): Config {
  return {
    mode: 'member',
    name: 'default',
    dataDir: './default.gavel',
    listenClientUrls: [new URL('http://127.0.0.1:2379')],
    advertiseClientUrls: [new URL('http://127.0.0.1:2379')],
    listenPeerUrls: [new URL('http://127.0.0.1:2380')],
    initialAdvertisePeerUrls: [new URL('http://127.0.0.1:2380')],
    initialCluster: '',
    initialClusterState: 'new',
    initialClusterToken: 'gavel-cluster',
    // etcd's default: none. /metrics and /health are on every client port anyway.
    listenMetricsUrls: [],
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    snapshotCount: 10_000,
    maxRequestBytes: 1.5 * 1024 * 1024,
    maxTxnOps: 128,
    maxPendingProposals: 5000,
    maxWatchersPerStream: 10_000,
    maxConcurrentStreams: 4096,
    watchProgressNotifyIntervalMs: 10 * 60 * 1000,
    leaseCheckpointIntervalMs: 5000,
    logLevel: 'info',
    metricsLockNames: '',
    certFile: '',
    keyFile: '',
    trustedCaFile: '',
    clientCertAuth: false,
    peerCertFile: '',
    peerKeyFile: '',
    peerTrustedCaFile: '',
    peerClientCertAuth: false,
    authToken: 'simple',
    authTokenTtlSeconds: 300,
    autoCompactionMode: 'periodic',
    autoCompactionRetention: '5m',
    quotaBackendBytes: 0,
  };
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export type ParseResult = { readonly kind: 'run'; readonly config: Config } | { readonly kind: 'help' } | { readonly kind: 'version' };

/** Parses etcd-style flags: --flag value, --flag=value. Unknown flags are an error. */
export function parseArgs(argv: readonly string[]): ParseResult {
  const values: Record<string, unknown> = { ...defaultConfig() };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--version') return { kind: 'version' };
    if (!arg.startsWith('-')) throw new UsageError(`unexpected argument '${arg}' (flags start with --)`);
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = FLAGS.find((f) => f.name === name);
    if (spec === undefined) throw new UsageError(`unknown flag: --${name} (see --help)`);
    // A boolean never takes the next argument (Go's flag package): --client-cert-auth alone is true.
    let raw: string | undefined = eq >= 0 ? body.slice(eq + 1) : spec.kind === 'bool' ? 'true' : argv[++i];
    if (raw === undefined) throw new UsageError(`flag needs an argument: --${name}`);
    values[spec.field] = parseValue(spec, raw);
    seen.add(spec.field);
  }
  // etcd derives the advertised client URLs from the listen URLs when only those are given.
  if (seen.has('listenClientUrls') && !seen.has('advertiseClientUrls')) values.advertiseClientUrls = values.listenClientUrls;
  if (seen.has('listenPeerUrls') && !seen.has('initialAdvertisePeerUrls')) values.initialAdvertisePeerUrls = values.listenPeerUrls;
  // The default retention is a duration, which revision mode cannot take: ask for the count.
  if (values.autoCompactionMode === 'revision' && !seen.has('autoCompactionRetention')) {
    throw new UsageError('--auto-compaction-mode revision needs --auto-compaction-retention <number of revisions to keep>');
  }
  const config = values as unknown as Config;
  validate(config);
  return { kind: 'run', config };
}

function parseValue(spec: FlagSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'enum':
      if (!spec.choices?.includes(raw)) throw new UsageError(`invalid value "${raw}" for --${spec.name}: expected one of ${spec.choices?.join(', ')}`);
      return raw;
    case 'int':
    case 'duration-ms': {
      if (!(spec.signed === true ? /^-?\d+$/ : /^\d+$/).test(raw)) throw new UsageError(`invalid value "${raw}" for --${spec.name}: expected a whole number`);
      const value = Number(raw);
      if (!Number.isSafeInteger(value)) throw new UsageError(`invalid value "${raw}" for --${spec.name}: out of range`);
      if (spec.signed !== true && value < (spec.min ?? 0)) throw new UsageError(`invalid value "${raw}" for --${spec.name}: must be at least ${spec.min ?? 0}`);
      return value;
    }
    case 'bool':
      if (['true', 't', '1', 'TRUE', 'True', 'T'].includes(raw)) return true;
      if (['false', 'f', '0', 'FALSE', 'False', 'F'].includes(raw)) return false;
      throw new UsageError(`invalid value "${raw}" for --${spec.name}: expected true or false`);
    case 'urls':
      return raw.split(',').filter((s) => s.length > 0).map((s) => parseUrl(spec.name, s));
  }
}

function parseUrl(flag: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`invalid URL "${raw}" for --${flag}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`URL scheme must be http or https: "${raw}" for --${flag}`);
  if (url.port === '') throw new UsageError(`URL must have a port: "${raw}" for --${flag}`);
  return url;
}

export function validate(config: Config): void {
  if (config.name.length === 0) throw new UsageError('--name must not be empty');
  if (config.dataDir.length === 0) throw new UsageError('--data-dir must not be empty');
  if (config.listenClientUrls.length === 0) throw new UsageError('--listen-client-urls must name at least one URL');
  if (config.heartbeatIntervalMs * 5 > config.electionTimeoutMs) {
    throw new UsageError('--election-timeout must be at least 5 times --heartbeat-interval');
  }
  if (config.maxRequestBytes > 64 * 1024 * 1024) throw new UsageError('--max-request-bytes must be at most 64 MiB');
  validateTls(config);
  autoCompactionOf(config);
  // etcd also takes 'jwt,pub-key=...,priv-key=...'; gavel refuses it rather than silently issuing simple tokens.
  if (config.authToken !== 'simple') {
    const type = config.authToken.split(',')[0] ?? '';
    throw new UsageError(`--auth-token ${JSON.stringify(config.authToken)}: ${type === 'jwt' ? 'jwt tokens are not supported' : 'unknown token type'}; only 'simple' is`);
  }
}

/**
 * The auto-compaction settings, or undefined when it is off. Throws etcd's error for a bad mode
 * (`unknown auto-compaction-mode "x"`) or retention (`error parsing CompactionRetention: ...`);
 * etcd refuses to start on either, and so does gavel.
 */
export function autoCompactionOf(config: Config): AutoCompactionSettings | undefined {
  try {
    return parseAutoCompaction(config.autoCompactionMode, config.autoCompactionRetention);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * etcd's rules: an https listener needs a certificate and its key, and requiring client
 * certificates needs the CA that signs them. http and https may be mixed in one flag; each URL
 * is served (or dialled) as its scheme says. The metrics listeners use the client certificate.
 */
function validateTls(config: Config): void {
  const sides = [
    { prefix: '', cert: config.certFile, key: config.keyFile, ca: config.trustedCaFile, auth: config.clientCertAuth, listeners: ['listen-client-urls', 'listen-metrics-urls'] as const },
    { prefix: 'peer-', cert: config.peerCertFile, key: config.peerKeyFile, ca: config.peerTrustedCaFile, auth: config.peerClientCertAuth, listeners: ['listen-peer-urls'] as const },
  ];
  const urlsOf = { 'listen-client-urls': config.listenClientUrls, 'listen-metrics-urls': config.listenMetricsUrls, 'listen-peer-urls': config.listenPeerUrls };
  for (const side of sides) {
    const p = side.prefix;
    if ((side.cert === '') !== (side.key === '')) throw new UsageError(`--${p}cert-file and --${p}key-file must be given together`);
    if (side.auth && side.ca === '') throw new UsageError(`--${p}client-cert-auth needs --${p}trusted-ca-file (the CA that signs the ${p === '' ? 'clients' : 'peers'}' certificates)`);
    for (const flag of side.listeners) {
      const https = urlsOf[flag].find((url) => url.protocol === 'https:');
      if (https !== undefined && side.cert === '') throw new UsageError(`--${flag} ${https.href} is https: give --${p}cert-file and --${p}key-file`);
    }
  }
}

export function helpText(): string {
  const lines = [
    'Usage: gavel [flags]',
    '',
    'gavel is a lock and leader-election coordination service that speaks the etcd v3 gRPC API.',
    'Start one member with the defaults:  gavel',
    '',
    'Central mode:  gavel --mode central',
    '  One coordinator process without consensus, serving only gavel.v1.Coordinator (FIFO locks,',
    '  reader-writer locks, semaphores, lock-delay, sequencer checks) and Lease. The simplest and',
    '  fastest deployment, and a single point of failure: while it is down nobody can lock, and a',
    '  lost disk loses every holder and queue. KV, Watch, Lock, Election, Cluster and Maintenance',
    '  answer UNIMPLEMENTED. Use a 3-member cluster when the lock service must survive a crash.',
    '',
    'Backups (take one with: etcdctl snapshot save FILE):',
    '  gavel snapshot restore FILE --name ... --initial-cluster ... --initial-advertise-peer-urls ... --data-dir ...',
    '  gavel snapshot status FILE [-w simple|json|table]',
    '  (gavel snapshot --help for the restore flags)',
    '',
    'Flags:',
  ];
  const defaults = defaultConfig();
  for (const spec of FLAGS) {
    const value = defaults[spec.field];
    const shown = Array.isArray(value) ? value.map(String).join(',') : String(value);
    lines.push(`  --${spec.name}`);
    lines.push(`      ${spec.help} (default: ${shown === '' ? '""' : shown})`);
  }
  lines.push('  --help', '      show this help', '  --version', '      print the version');
  return lines.join('\n');
}

/** A URL's host for a listener, without the brackets Node's URL keeps around IPv6 literals. */
export function listenHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}
