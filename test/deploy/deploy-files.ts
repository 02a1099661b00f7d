/**
 * Readers for the operator files in deploy/: YAML (through python3's PyYAML: the repository has
 * no YAML package for Node), systemd units and environment files, Dockerfiles, and PromQL
 * metric-name extraction. `dashboardMetrics()` and `alertMetrics()` list every metric the
 * Grafana dashboard and the alert rules query, so a live test can check each one against a
 * real /metrics scrape. This module does not import vitest.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from both test/deploy/*.ts (vitest) and dist/test/deploy/*.js (built). */
export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'deploy'))) return dir;
    if (dirname(dir) === dir) return resolve(start, '..', '..');
  }
}
export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');
export const DASHBOARD_PATH = join(DEPLOY_DIR, 'grafana', 'dashboards', 'gavel.json');
export const ALERTS_PATH = join(DEPLOY_DIR, 'prometheus', 'alerts.yml');

// ---------------------------------------------------------------------------------------------
// The metrics gavel exposes.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface KnownMetric {
  readonly type: MetricType;
  /** Exposed only once the Lock / Election / Coordinator work lands. */
  readonly pending: boolean;
}

const live = (type: MetricType): KnownMetric => ({ type, pending: false });
const pending = (type: MetricType): KnownMetric => ({ type, pending: true });

/**
 * Every metric family gavel serves on /metrics (etcd's names where the meaning is the same),
 * by family name; histograms appear in a scrape as `<name>_bucket`, `_sum` and `_count`.
 * `process_*` lists only the prom-client defaults the dashboard uses.
 */
export const KNOWN_METRICS: Readonly<Record<string, KnownMetric>> = {
  etcd_server_has_leader: live('gauge'),
  etcd_server_is_leader: live('gauge'),
  etcd_server_leader_changes_seen_total: live('counter'),
  // Gauges holding the commit and applied index, as in etcd, despite the _total suffix.
  etcd_server_proposals_committed_total: live('gauge'),
  etcd_server_proposals_applied_total: live('gauge'),
  etcd_server_proposals_pending: live('gauge'),
  etcd_server_proposals_failed_total: live('counter'),
  etcd_server_slow_apply_total: live('counter'),
  etcd_disk_wal_fsync_duration_seconds: live('histogram'),
  etcd_disk_backend_commit_duration_seconds: live('histogram'),
  etcd_network_peer_round_trip_time_seconds: live('histogram'),
  etcd_network_peer_sent_bytes_total: live('counter'),
  etcd_network_peer_received_bytes_total: live('counter'),
  etcd_mvcc_db_total_size_in_bytes: live('gauge'),
  etcd_debugging_mvcc_keys_total: live('gauge'),
  etcd_debugging_server_lease_expired_total: live('counter'),
  grpc_server_started_total: live('counter'),
  grpc_server_handled_total: live('counter'),
  grpc_server_handling_seconds: live('histogram'),
  process_cpu_seconds_total: live('counter'),
  process_resident_memory_bytes: live('gauge'),
  process_open_fds: live('gauge'),
  process_max_fds: live('gauge'),
  gavel_lock_holders: live('gauge'),
  gavel_lock_waiters: live('gauge'),
  gavel_lock_acquire_wait_seconds: live('histogram'),
  gavel_lock_handoff_seconds: live('histogram'),
  gavel_coordinator_queue_length: live('gauge'),
  gavel_fencing_token_rejections_total: live('counter'),
  gavel_session_expiries_total: live('counter'),
  gavel_election_leader_changes_total: live('counter'),
};

/** Series Prometheus makes up itself; they never appear in a member's /metrics. */
export const PROMETHEUS_SYNTHETIC = new Set(['up']);

export interface QueriedMetric {
  /** The series name as queried, e.g. `etcd_disk_wal_fsync_duration_seconds_bucket`. */
  readonly name: string;
  /** Its metric family in KNOWN_METRICS (the name without _bucket/_sum/_count), or the name. */
  readonly family: string;
  /** Made up by Prometheus (`up`), so it is not in a scrape of /metrics. */
  readonly synthetic: boolean;
  /** A gavel_* metric that arrives with later work: absent from a scrape until then. */
  readonly pending: boolean;
  /** Whether the family is in KNOWN_METRICS (or synthetic); false means a typo or a new metric. */
  readonly known: boolean;
  /** Dashboard panel titles, or alert names, that query it. */
  readonly usedBy: readonly string[];
}

export function familyOf(series: string): string {
  const match = /^(.*)_(bucket|sum|count)$/.exec(series);
  if (match !== null && KNOWN_METRICS[match[1]!]?.type === 'histogram') return match[1]!;
  return series;
}

// ---------------------------------------------------------------------------------------------
// PromQL.

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2']);

/** Grafana's template variables, replaced by values that keep the query valid PromQL. */
export function substituteGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}|\$\{__interval\}/g, '1m')
    .replace(/\$__range|\$\{__range\}/g, '1h')
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?/g, '.+');
}

/** The metric names a PromQL expression selects (not functions, labels or keywords). */
export function metricNamesIn(expr: string): string[] {
  let text = substituteGrafanaVariables(expr);
  text = text.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""'); // string literals
  text = text.replace(/\{[^{}]*\}/g, ' '); // label matchers
  text = text.replace(/\[[^\]]*\]/g, ' '); // range and subquery selectors
  text = text.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names = new Set<string>();
  for (const match of text.matchAll(/(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(\s*\()?/g)) {
    const name = match[1]!;
    if (match[2] !== undefined) continue; // a function or aggregation call
    if (PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

function collect(uses: ReadonlyArray<{ readonly expr: string; readonly usedBy: string }>): QueriedMetric[] {
  const byName = new Map<string, Set<string>>();
  for (const { expr, usedBy } of uses) {
    for (const name of metricNamesIn(expr)) {
      if (!byName.has(name)) byName.set(name, new Set());
      byName.get(name)!.add(usedBy);
    }
  }
  return [...byName.keys()].sort().map((name) => {
    const family = familyOf(name);
    const synthetic = PROMETHEUS_SYNTHETIC.has(name);
    const known = synthetic || KNOWN_METRICS[family] !== undefined;
    return { name, family, synthetic, pending: KNOWN_METRICS[family]?.pending ?? false, known, usedBy: [...byName.get(name)!].sort() };
  });
}

// ---------------------------------------------------------------------------------------------
// The dashboard.

export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
}

export interface DashboardPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly targets?: readonly DashboardTarget[];
  readonly panels?: readonly DashboardPanel[];
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly type: string; readonly query?: unknown; readonly definition?: string }> };
}

export function readDashboard(path = DASHBOARD_PATH): Dashboard {
  return JSON.parse(readFileSync(path, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included. */
export function dashboardPanels(dashboard: Dashboard = readDashboard()): DashboardPanel[] {
  const all: DashboardPanel[] = [];
  for (const panel of dashboard.panels) {
    all.push(panel);
    for (const nested of panel.panels ?? []) all.push(nested);
  }
  return all;
}

/** Every PromQL query in the dashboard: panel targets and template-variable queries. */
export function dashboardQueries(dashboard: Dashboard = readDashboard()): Array<{ expr: string; usedBy: string }> {
  const queries: Array<{ expr: string; usedBy: string }> = [];
  for (const panel of dashboardPanels(dashboard)) {
    for (const target of panel.targets ?? []) queries.push({ expr: target.expr, usedBy: panel.title });
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const raw = typeof variable.query === 'string' ? variable.query : ((variable.query as { query?: string } | undefined)?.query ?? variable.definition ?? '');
    // label_values(metric{...}, label) / query_result(expr): the metric part is PromQL.
    const inner = /^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$/.exec(raw)?.[1] ?? /^\s*query_result\((.*)\)\s*$/.exec(raw)?.[1] ?? raw;
    queries.push({ expr: inner, usedBy: `variable $${variable.name}` });
  }
  return queries;
}

/**
 * Every metric the dashboard queries, with the panels that query it. `pending` marks gavel_*
 * metrics that arrive with the locks work (their panels show "No data" until then);
 * `synthetic` marks series Prometheus makes up (`up`), which no scrape of /metrics contains.
 */
export function dashboardMetrics(): QueriedMetric[] {
  return collect(dashboardQueries());
}

// ---------------------------------------------------------------------------------------------
// Alert rules.

export interface AlertRule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export function readAlertRules(path = ALERTS_PATH): AlertRule[] {
  const [doc] = parseYamlFile(path) as Array<{ groups: Array<{ rules: AlertRule[] }> }>;
  return doc!.groups.flatMap((group) => group.rules);
}

/** Every metric the alert rules query, with the alerts that use it (needs python3 + PyYAML). */
export function alertMetrics(): QueriedMetric[] {
  return collect(readAlertRules().map((rule) => ({ expr: rule.expr, usedBy: rule.alert ?? rule.record ?? '?' })));
}

// ---------------------------------------------------------------------------------------------
// Tools.

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0;
}

let yamlAvailable: boolean | undefined;

/** python3 with PyYAML (Debian: python3-yaml) is how these tests read YAML. */
export function hasYamlParser(): boolean {
  yamlAvailable ??= spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0;
  return yamlAvailable;
}

const YAML_TO_JSON = [
  'import json, sys, yaml',
  'with open(sys.argv[1], encoding="utf-8") as f:',
  '    docs = list(yaml.safe_load_all(f))',
  'json.dump(docs, sys.stdout, default=str)',
].join('\n');

/** All documents of a YAML file, through PyYAML's safe loader (merge keys resolved). */
export function parseYamlFile(path: string): unknown[] {
  const result = spawnSync('python3', ['-c', YAML_TO_JSON, path], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`YAML parse of ${path} failed: ${result.stderr || result.error?.message}`);
  return JSON.parse(result.stdout) as unknown[];
}

// ---------------------------------------------------------------------------------------------
// systemd.

export type UnitFile = Map<string, Array<{ key: string; value: string }>>;

/** A unit file's sections and assignments in order; continuation lines joined, comments dropped. */
export function parseUnitFile(text: string): UnitFile {
  const sections: UnitFile = new Map();
  let current: Array<{ key: string; value: string }> | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section !== null) {
      current = [];
      if (sections.has(section[1]!)) throw new Error(`section [${section[1]}] appears twice`);
      sections.set(section[1]!, current);
      continue;
    }
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1).trimEnd() + ' ' + lines[++i]!.trim();
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`line ${i + 1} is neither a section, a comment nor key=value: ${line}`);
    if (current === undefined) throw new Error(`line ${i + 1} is outside any section: ${line}`);
    current.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  }
  return sections;
}

export function unitValues(unit: UnitFile, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter((entry) => entry.key === key).map((entry) => entry.value);
}

/** KEY=VALUE lines of an EnvironmentFile (no quoting is used in ours). */
export function parseEnvFile(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`not KEY=VALUE: ${line}`);
    env.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return env;
}

/**
 * A unit's ExecStart as systemd turns it into argv: `${VAR}` becomes exactly one argument (empty
 * if unset), a word that is exactly `$VAR` becomes the value split at whitespace (zero or more
 * arguments). The `Environment=` lines apply first, then the EnvironmentFile's values.
 */
export function expandExecStart(unit: UnitFile, envFile: ReadonlyMap<string, string>, specifiers: Record<string, string> = {}): string[] {
  const env = new Map<string, string>();
  for (const assignment of unitValues(unit, 'Service', 'Environment')) {
    const eq = assignment.indexOf('=');
    const value = assignment.slice(eq + 1).replace(/%([A-Za-z%])/g, (all, s: string) => (s === '%' ? '%' : (specifiers[s] ?? all)));
    env.set(assignment.slice(0, eq), value);
  }
  for (const [key, value] of envFile) env.set(key, value);
  const [execStart] = unitValues(unit, 'Service', 'ExecStart');
  if (execStart === undefined) throw new Error('no ExecStart');
  const argv: string[] = [];
  for (const word of execStart.split(/\s+/).filter((w) => w.length > 0)) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
    if (whole !== null) {
      argv.push(...(env.get(whole[1]!) ?? '').split(/\s+/).filter((w) => w.length > 0));
      continue;
    }
    argv.push(word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_all, name: string) => env.get(name) ?? ''));
  }
  return argv;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile.

export interface DockerInstruction {
  readonly instruction: string;
  readonly args: string;
  readonly line: number;
  /** Index of the build stage (FROM) it belongs to; -1 before the first FROM. */
  readonly stage: number;
}

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): DockerInstruction[] {
  const instructions: DockerInstruction[] = [];
  const lines = text.split('\n');
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      let next = lines[++i]!.trim();
      while (next.startsWith('#') && i + 1 < lines.length) next = lines[++i]!.trim(); // comments inside a continuation
      line = line.slice(0, -1).trimEnd() + ' ' + next;
    }
    const match = /^([A-Za-z]+)\s+(.*)$/s.exec(line);
    if (match === null) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${line}"`);
    const instruction = match[1]!.toUpperCase();
    if (instruction === 'FROM') stage++;
    instructions.push({ instruction, args: match[2]!.trim(), line: start + 1, stage });
  }
  return instructions;
}

/** An exec-form (JSON array) argument list, or undefined for shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not a JSON string array: ${args}`);
  return parsed as string[];
}
