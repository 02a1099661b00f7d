// Goal: the operator files in deploy/ are well-formed and agree with gavel itself (its flags, ports, probes and metric names), checked statically because no container engine, systemd or Kubernetes runs in CI.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { initialMembers } from '../../server/cluster/bootstrap.js';
import { parseArgs, type Config } from '../../server/config.js';
import {
  DEPLOY_DIR,
  KNOWN_METRICS,
  REPO_ROOT,
  alertMetrics,
  commandExists,
  dashboardMetrics,
  dashboardPanels,
  dashboardQueries,
  execForm,
  expandExecStart,
  hasYamlParser,
  metricNamesIn,
  parseDockerfile,
  parseEnvFile,
  parseUnitFile,
  parseYamlFile,
  readAlertRules,
  readDashboard,
  substituteGrafanaVariables,
  unitValues,
  type DockerInstruction,
} from './deploy-files.js';

type Obj = Record<string, unknown>;

const inCI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gavel-deploy-'));
  tempDirs.push(dir);
  return dir;
}

/** Skips when a tool is missing locally; in CI (.ci/run installs it) a missing tool is a failure. */
function requireTool(ctx: TestContext, available: boolean, what: string, install: string): void {
  if (available) return;
  const message = `${what} is not installed (Debian: apt-get install -y ${install})`;
  if (inCI) throw new Error(`${message}; .ci/run should have installed it`);
  ctx.skip(`skipped: ${message}`);
}

const needYaml = (ctx: TestContext): void => requireTool(ctx, hasYamlParser(), 'python3 with PyYAML', 'python3-yaml');
const hasPromtool = commandExists('promtool');
const needPromtool = (ctx: TestContext): void => requireTool(ctx, hasPromtool, 'promtool', 'prometheus');

function run(command: string, args: readonly string[], options: { cwd?: string } = {}): { status: number | null; output: string } {
  const result = spawnSync(command, args, { cwd: options.cwd ?? REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}` };
}

/** gavel's own flag parser and bootstrap check on a command line's flags. */
function gavelConfig(flags: readonly string[]): Config {
  const parsed = parseArgs(flags);
  if (parsed.kind !== 'run') throw new Error(`expected flags to run a member, got --${parsed.kind}`);
  initialMembers(parsed.config); // throws when --name / --initial-advertise-peer-urls disagree with --initial-cluster
  return parsed.config;
}

const urls = (list: readonly URL[]): string[] => list.map((u) => u.href.replace(/\/$/, ''));

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out.sort();
}

const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');
const asObj = (value: unknown, what: string): Obj => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not a mapping`);
  return value as Obj;
};
const asArr = (value: unknown, what: string): unknown[] => {
  if (!Array.isArray(value)) throw new Error(`${what} is not a list`);
  return value;
};
const get = (value: unknown, path: string): unknown => {
  let current: unknown = value;
  for (const key of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = /^\d+$/.test(key) && Array.isArray(current) ? current[Number(key)] : (current as Obj)[key];
  }
  return current;
};

// ---------------------------------------------------------------------------------------------

describe('every deploy file parses', () => {
  it('parses every YAML file under deploy/ into at least one non-empty document', (ctx) => {
    // Goal: no YAML file in deploy/ has a syntax error or is accidentally empty.
    needYaml(ctx);
    const files = filesUnder(DEPLOY_DIR).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const file of files) {
      const docs = parseYamlFile(file);
      expect(docs.length, relative(REPO_ROOT, file)).toBeGreaterThan(0);
      for (const doc of docs) expect(doc, relative(REPO_ROOT, file)).toBeTypeOf('object');
    }
  });

  it('parses every JSON file under deploy/', () => {
    // Goal: the dashboard (and any other JSON) is valid JSON.
    const files = filesUnder(DEPLOY_DIR).filter((f) => f.endsWith('.json'));
    expect(files.map((f) => relative(DEPLOY_DIR, f))).toContain('grafana/dashboards/gavel.json');
    for (const file of files) expect(() => JSON.parse(readFileSync(file, 'utf8')), relative(REPO_ROOT, file)).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------

describe('systemd unit', () => {
  const unitPath = 'deploy/systemd/gavel.service';
  const unit = parseUnitFile(read(unitPath));
  const one = (key: string): string | undefined => unitValues(unit, 'Service', key).at(-1);

  it('has the sections, user, restart, stop and limit settings an operator expects', () => {
    // Goal: the unit runs one member as the gavel user, restarts on failure and stops with SIGTERM in bounded time.
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(one('User')).toBe('gavel');
    expect(one('Group')).toBe('gavel');
    expect(one('EnvironmentFile')).toBe('/etc/gavel/gavel.env');
    expect(one('ExecStart')).toMatch(/^\/usr\/bin\/node \/opt\/gavel\/dist\/server\/main\.js /);
    expect(one('Restart')).toBe('on-failure');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('TimeoutStopSec')).toMatch(/^\d+s?$/);
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
    expect(unitValues(unit, 'Install', 'WantedBy')).toEqual(['multi-user.target']);
  });

  it('is hardened as specified and leaves MemoryDenyWriteExecute unset, saying why', () => {
    // Goal: the sandboxing settings are present with the intended values, and the one that would break V8's JIT is absent and explained.
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ReadWritePaths: '/var/lib/gavel',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectKernelLogs: 'yes',
      ProtectControlGroups: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      CapabilityBoundingSet: '',
      SystemCallFilter: '@system-service',
      // Without it, V8's pkey_alloc() probe (outside @system-service) would kill Node with SIGSYS.
      SystemCallErrorNumber: 'EPERM',
    };
    for (const [key, value] of Object.entries(expected)) expect(one(key), key).toBe(value);
    expect(one('MemoryDenyWriteExecute')).toBeUndefined();
    const text = read(unitPath);
    expect(text).toMatch(/^# MemoryDenyWriteExecute= is deliberately NOT set/m);
    expect(text).toMatch(/JIT/);
  });

  it('expands, with the example env file, into flags gavel accepts for member 1 of 3', () => {
    // Goal: what systemd would execute is a valid gavel command line whose name and advertised peer URL match --initial-cluster.
    const argv = expandExecStart(unit, parseEnvFile(read('deploy/systemd/gavel.env.example')), { H: 'host1' });
    expect(argv.slice(0, 2)).toEqual(['/usr/bin/node', '/opt/gavel/dist/server/main.js']);
    const config = gavelConfig(argv.slice(2));
    expect(config.name).toBe('gavel1');
    expect(config.dataDir.startsWith('/var/lib/gavel')).toBe(true);
    expect(initialMembers(config).map((m) => m.name)).toEqual(['gavel1', 'gavel2', 'gavel3']);
    expect(urls(config.listenMetricsUrls)).toEqual(['http://0.0.0.0:2381']);
    expect(config.logLevel).toBe('info'); // GAVEL_EXTRA_FLAGS split into two arguments
  });

  it('expands, with an empty env file, into a single loopback member', () => {
    // Goal: the unit's own defaults are a valid gavel command line on their own.
    const config = gavelConfig(expandExecStart(unit, new Map(), { H: 'host1' }).slice(2));
    expect(config.name).toBe('host1');
    expect(urls(config.listenClientUrls)).toEqual(['http://127.0.0.1:2379']);
    expect(initialMembers(config)).toHaveLength(1);
  });

  it('passes systemd-analyze verify and scores "OK" in systemd-analyze security', (ctx) => {
    // Goal: systemd itself accepts every directive (unknown keys and bad values are reported) and rates the sandbox as well hardened.
    requireTool(ctx, commandExists('systemd-analyze'), 'systemd-analyze', 'systemd');
    let path = join(REPO_ROOT, unitPath);
    if (!existsSync('/usr/bin/node')) {
      // verify checks that ExecStart's binary exists; point it at this Node for the check only.
      path = join(tempDir(), 'gavel.service');
      writeFileSync(path, read(unitPath).replace('/usr/bin/node ', `${process.execPath} `));
    }
    const verify = run('systemd-analyze', ['verify', path]);
    const complaints = verify.output.split('\n').filter((line) => line.includes('gavel.service'));
    expect(complaints, verify.output).toEqual([]);
    expect(verify.status, verify.output).toBe(0);
    // Exposure is reported 0.0-10.0; --threshold is in tenths. 1.7 today; above 2.5 is no longer "OK".
    const security = run('systemd-analyze', ['security', '--offline=yes', '--threshold=25', path]);
    expect(security.status, security.output).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('container image', () => {
  const dockerfile = parseDockerfile(read('deploy/container/Dockerfile'));
  const stageOf = (n: number): DockerInstruction[] => dockerfile.filter((i) => i.stage === n);
  const lastOf = (instruction: string): DockerInstruction | undefined => dockerfile.filter((i) => i.instruction === instruction).at(-1);

  it('builds in two node:20-bookworm-slim stages and runs only dist/server, proto/ and production dependencies', () => {
    // Goal: the runtime stage carries no dev dependencies, sources or tests, and needs no compiler.
    const args = new Map(dockerfile.filter((i) => i.instruction === 'ARG').map((i) => i.args.split('=') as [string, string]));
    const froms = dockerfile.filter((i) => i.instruction === 'FROM').map((i) => i.args.replace(/\$\{(\w+)\}/g, (_a, name: string) => args.get(name) ?? ''));
    expect(froms).toEqual(['node:20-bookworm-slim AS build', 'node:20-bookworm-slim AS runtime']);
    const build = stageOf(0).map((i) => `${i.instruction} ${i.args}`);
    expect(build.some((l) => /^RUN npm ci\b/.test(l))).toBe(true);
    expect(build.some((l) => /^RUN npm run build\b/.test(l))).toBe(true);
    const runtime = stageOf(1);
    const runs = runtime.filter((i) => i.instruction === 'RUN').map((i) => i.args);
    expect(runs.some((r) => /npm ci\b.*--omit=dev\b.*--ignore-scripts\b/.test(r))).toBe(true);
    expect(runs.join(' ')).not.toMatch(/apt-get|build-essential|python|make\b|g\+\+/);
    const copies = runtime.filter((i) => i.instruction === 'COPY').map((i) => i.args);
    expect(copies).toEqual(['package.json package-lock.json ./', '--from=build /src/dist/server/ dist/server/', 'proto/ proto/']);
    // The no-compiler claim: classic-level's prebuilt binary for linux-x64 (glibc) is in the package.
    expect(existsSync(join(REPO_ROOT, 'node_modules/classic-level/prebuilds/linux-x64/classic-level.node'))).toBe(true);
  });

  it('runs as a non-root user with the data volume, the three ports and the server entrypoint', () => {
    // Goal: the runtime contract (user, volume, ports, entrypoint) is what compose and Kubernetes rely on.
    const runtime = stageOf(1);
    const user = runtime.filter((i) => i.instruction === 'USER').at(-1)?.args;
    expect(user).toBe('10001:10001');
    expect(runtime.filter((i) => i.instruction === 'VOLUME').map((i) => i.args)).toEqual(['/var/lib/gavel']);
    expect(runtime.filter((i) => i.instruction === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toEqual(['2379', '2380', '2381']);
    expect(execForm(lastOf('ENTRYPOINT')!.args)).toEqual(['node', '/opt/gavel/dist/server/main.js']);
    const cmd = gavelConfig(execForm(lastOf('CMD')!.args)!);
    expect(cmd.dataDir).toBe('/var/lib/gavel');
    expect(urls(cmd.listenClientUrls)).toEqual(['http://0.0.0.0:2379']);
    expect(urls(cmd.listenMetricsUrls)).toEqual(['http://0.0.0.0:2381']);
  });

  it('copies from the build context only paths that exist and that the .dockerignore allow list lets in', () => {
    // Goal: `docker build -f deploy/container/Dockerfile .` would find every file it copies.
    const ignore = read('deploy/container/Dockerfile.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore.slice(1).map((l) => {
      expect(l.startsWith('!'), `only re-includes after "*": ${l}`).toBe(true);
      return l.slice(1).replace(/\/$/, '');
    });
    const sources = dockerfile
      .filter((i) => i.instruction === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .map((s) => s.replace(/\/$/, '').replace(/^\.\//, ''));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(REPO_ROOT, source)), `${source} exists in the repository`).toBe(true);
      expect(allowed.some((a) => source === a || source.startsWith(`${a}/`)), `${source} is allowed into the context`).toBe(true);
    }
  });

  it('has a HEALTHCHECK whose node snippet passes on 200 from /livez and fails on 503 or no answer', async () => {
    // Goal: the health check command works as written (run here against a stand-in server, since no container engine runs).
    const healthcheck = lastOf('HEALTHCHECK')!.args;
    const command = execForm(healthcheck.slice(healthcheck.indexOf('CMD ') + 4).trim())!;
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain('http://127.0.0.1:2381/livez');
    let status = 200;
    const server = createServer((request, response) => {
      response.writeHead(request.url === '/livez' ? status : 404);
      response.end();
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const port = (server.address() as AddressInfo).port;
    const runCheck = (target: string) =>
      new Promise<number | null>((done) => {
        const child = spawn(process.execPath, command.slice(1).map((a) => a.replace('http://127.0.0.1:2381', target)), { stdio: 'ignore' });
        child.on('exit', (code) => done(code));
      });
    try {
      expect(await runCheck(`http://127.0.0.1:${port}`)).toBe(0);
      status = 503;
      expect(await runCheck(`http://127.0.0.1:${port}`)).toBe(1);
    } finally {
      await new Promise<void>((done) => server.close(() => done()));
    }
    expect(await runCheck(`http://127.0.0.1:${port}`)).toBe(1); // nothing listening
  });
});

// ---------------------------------------------------------------------------------------------

describe('compose', () => {
  const composePath = join(DEPLOY_DIR, 'compose', 'compose.yaml');
  const composeDir = dirname(composePath);

  it('has gavel1..gavel3 whose commands are valid gavel flags with one shared --initial-cluster', (ctx) => {
    // Goal: the three members would bootstrap one cluster: same --initial-cluster and token, each name and advertised peer URL matching its entry.
    needYaml(ctx);
    const compose = asObj(parseYamlFile(composePath)[0], 'compose.yaml');
    const services = asObj(compose['services'], 'services');
    const gavels = Object.keys(services).filter((name) => /^gavel\d+$/.test(name)).sort();
    expect(gavels).toEqual(['gavel1', 'gavel2', 'gavel3']);
    const expectedCluster = gavels.map((g) => `${g}=http://${g}:2380`).join(',');
    const volumes = asObj(compose['volumes'], 'volumes');
    const hostPorts = new Set<string>();
    const tokens = new Set<string>();
    for (const name of gavels) {
      const service = asObj(services[name], name);
      const command = asArr(service['command'], `${name}.command`) as string[];
      const config = gavelConfig(command);
      expect(config.name).toBe(name);
      expect(config.initialCluster).toBe(expectedCluster);
      expect(config.initialClusterState).toBe('new');
      expect(urls(config.initialAdvertisePeerUrls)).toEqual([`http://${name}:2380`]);
      expect(urls(config.advertiseClientUrls)).toEqual([`http://${name}:2379`]);
      expect(urls(config.listenMetricsUrls)).toEqual(['http://0.0.0.0:2381']);
      tokens.add(config.initialClusterToken);
      // Its own named volume at the data dir.
      const mounts = asArr(service['volumes'], `${name}.volumes`) as string[];
      const data = mounts.map((m) => m.split(':')).find(([, target]) => target === '/var/lib/gavel');
      expect(data, `${name} mounts a volume at /var/lib/gavel`).toBeDefined();
      expect(Object.keys(volumes)).toContain(data![0]);
      expect(config.dataDir.startsWith('/var/lib/gavel')).toBe(true);
      // Built from the Dockerfile, hardened like the Kubernetes pods.
      const build = asObj(service['build'], `${name}.build`);
      expect(existsSync(resolve(composeDir, String(build['context']), String(build['dockerfile'])))).toBe(true);
      expect(service['read_only']).toBe(true);
      expect(service['cap_drop']).toEqual(['ALL']);
      for (const port of asArr(service['ports'], `${name}.ports`) as string[]) {
        expect(typeof port, 'ports are quoted strings (YAML 1.1 reads 2379:2379 as a base-60 number)').toBe('string');
        hostPorts.add(port.split(':').slice(0, -1).join(':'));
      }
    }
    expect(tokens.size).toBe(1);
    expect(hostPorts.size).toBe(3);
  });

  it('mounts the Prometheus and Grafana files that exist, and Prometheus scrapes exactly the three members every 10 s', (ctx) => {
    // Goal: the monitoring services would find their configuration and cover every member.
    needYaml(ctx);
    const compose = asObj(parseYamlFile(composePath)[0], 'compose.yaml');
    const services = asObj(compose['services'], 'services');
    const binds = (name: string): Array<[string, string]> =>
      (asArr(asObj(services[name], name)['volumes'], `${name}.volumes`) as string[])
        .map((m) => m.split(':').slice(0, 2) as [string, string])
        .filter(([source]) => source.startsWith('.'));
    const prometheusBinds = binds('prometheus');
    expect(prometheusBinds).toContainEqual(['../prometheus', '/etc/prometheus']);
    const grafanaBinds = binds('grafana');
    expect(grafanaBinds.map(([, target]) => target).sort()).toEqual(['/etc/grafana/dashboards', '/etc/grafana/provisioning']);
    for (const [source] of [...prometheusBinds, ...grafanaBinds]) expect(existsSync(resolve(composeDir, source)), source).toBe(true);

    const prometheus = asObj(parseYamlFile(join(DEPLOY_DIR, 'prometheus', 'prometheus.yml'))[0], 'prometheus.yml');
    expect(get(prometheus, 'global.scrape_interval')).toBe('10s');
    const job = (asArr(prometheus['scrape_configs'], 'scrape_configs') as Obj[]).find((j) => j['job_name'] === 'gavel');
    expect(get(job, 'scrape_interval') ?? get(prometheus, 'global.scrape_interval')).toBe('10s');
    const targets = (asArr(job?.['static_configs'], 'static_configs') as Obj[]).flatMap((s) => s['targets'] as string[]);
    expect(targets.sort()).toEqual(['gavel1:2381', 'gavel2:2381', 'gavel3:2381']);

    // Grafana provisioning: the data source the dashboard defaults to, and a provider for the mounted dashboards.
    const datasource = (parseYamlFile(join(DEPLOY_DIR, 'grafana/provisioning/datasources/prometheus.yaml'))[0] as Obj)['datasources'] as Obj[];
    expect(datasource[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true });
    const providers = (parseYamlFile(join(DEPLOY_DIR, 'grafana/provisioning/dashboards/gavel.yaml'))[0] as Obj)['providers'] as Obj[];
    expect(get(providers[0], 'options.path')).toBe('/etc/grafana/dashboards');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Kubernetes', () => {
  const k8sDir = join(DEPLOY_DIR, 'kubernetes');
  const loadAll = (): Obj[] =>
    readdirSync(k8sDir)
      .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
      .flatMap((f) => parseYamlFile(join(k8sDir, f)).map((d) => asObj(d, f)));
  const byKind = (docs: Obj[], kind: string): Obj[] => docs.filter((d) => d['kind'] === kind);

  it('lists every manifest in kustomization.yaml', (ctx) => {
    // Goal: `kubectl apply -k deploy/kubernetes` applies all the manifests and nothing missing.
    needYaml(ctx);
    const kustomization = asObj(parseYamlFile(join(k8sDir, 'kustomization.yaml'))[0], 'kustomization');
    const resources = (asArr(kustomization['resources'], 'resources') as string[]).sort();
    const files = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
    expect(resources).toEqual(files);
    expect(kustomization['namespace']).toBe('gavel');
  });

  it('runs a StatefulSet of 3 whose args are valid gavel flags with peer names from the headless Service', (ctx) => {
    // Goal: each pod, with Kubernetes' $(VAR) expansion, gets a valid command line naming gavel-N.gavel-peer.<ns>.svc... consistently.
    needYaml(ctx);
    const docs = loadAll();
    const [sts] = byKind(docs, 'StatefulSet');
    expect(get(sts, 'spec.replicas')).toBe(3);
    expect(get(sts, 'spec.podManagementPolicy')).toBe('Parallel');
    const serviceName = get(sts, 'spec.serviceName');
    const headless = byKind(docs, 'Service').find((s) => get(s, 'metadata.name') === serviceName);
    expect(headless, 'the StatefulSet names an existing Service').toBeDefined();
    expect(get(headless, 'spec.clusterIP')).toBe('None');
    expect(get(headless, 'spec.publishNotReadyAddresses')).toBe(true);

    const container = asObj(get(sts, 'spec.template.spec.containers.0'), 'container');
    const env = asArr(container['env'], 'env') as Obj[];
    const envNames = new Set(env.map((e) => e['name'] as string));
    const args = asArr(container['args'], 'args') as string[];
    for (const arg of args) for (const [, name] of arg.matchAll(/\$\((\w+)\)/g)) expect(envNames, `$(${name}) is defined in env`).toContain(name);
    expect(get(env.find((e) => e['name'] === 'POD_NAME'), 'valueFrom.fieldRef.fieldPath')).toBe('metadata.name');
    expect(get(env.find((e) => e['name'] === 'POD_NAMESPACE'), 'valueFrom.fieldRef.fieldPath')).toBe('metadata.namespace');
    const domain = get(env.find((e) => e['name'] === 'CLUSTER_DOMAIN'), 'value') as string;

    const namespace = 'gavel';
    const peerHost = (i: number) => `gavel-${i}.${String(serviceName)}.${namespace}.svc.${domain}`;
    for (let i = 0; i < 3; i++) {
      const values: Record<string, string> = { POD_NAME: `gavel-${i}`, POD_NAMESPACE: namespace, CLUSTER_DOMAIN: domain };
      const config = gavelConfig(args.map((a) => a.replace(/\$\((\w+)\)/g, (_all, name: string) => values[name] ?? '')));
      expect(config.name).toBe(`gavel-${i}`);
      expect(config.initialCluster).toBe([0, 1, 2].map((j) => `gavel-${j}=http://${peerHost(j)}:2380`).join(','));
      expect(urls(config.initialAdvertisePeerUrls)).toEqual([`http://${peerHost(i)}:2380`]);
      expect(urls(config.listenMetricsUrls)).toEqual(['http://0.0.0.0:2381']);
      expect(config.dataDir.startsWith('/var/lib/gavel/')).toBe(true);
    }
  });

  it('probes /readyz and /livez on port 2381', (ctx) => {
    // Goal: readiness follows "has a leader and applied the log", liveness only "the process answers".
    needYaml(ctx);
    const [sts] = byKind(loadAll(), 'StatefulSet');
    const container = asObj(get(sts, 'spec.template.spec.containers.0'), 'container');
    expect(get(container, 'readinessProbe.httpGet')).toEqual({ path: '/readyz', port: 2381 });
    expect(get(container, 'livenessProbe.httpGet')).toEqual({ path: '/livez', port: 2381 });
    const ports = (container['ports'] as Obj[]).map((p) => p['containerPort']);
    expect(ports).toEqual([2379, 2380, 2381]);
  });

  it('keeps data on per-member claims, runs locked down with resources set, and is scrapeable', (ctx) => {
    // Goal: storage, security context, resources and the Prometheus annotations are all present and consistent.
    needYaml(ctx);
    const docs = loadAll();
    const [sts] = byKind(docs, 'StatefulSet');
    const pod = asObj(get(sts, 'spec.template.spec'), 'pod spec');
    const container = asObj(get(pod, 'containers.0'), 'container');
    const claims = asArr(get(sts, 'spec.volumeClaimTemplates'), 'volumeClaimTemplates') as Obj[];
    const mounts = container['volumeMounts'] as Obj[];
    const dataMount = mounts.find((m) => m['mountPath'] === '/var/lib/gavel');
    expect(claims.map((c) => get(c, 'metadata.name'))).toContain(dataMount?.['name']);
    expect(get(claims[0], 'spec.resources.requests.storage')).toBeDefined();

    expect(get(pod, 'securityContext.runAsNonRoot')).toBe(true);
    // The image's USER, so file ownership in the image and on the volume agree.
    expect(get(pod, 'securityContext.runAsUser')).toBe(10001);
    expect(get(pod, 'securityContext.fsGroup')).toBe(10001);
    expect(get(container, 'securityContext.readOnlyRootFilesystem')).toBe(true);
    expect(get(container, 'securityContext.allowPrivilegeEscalation')).toBe(false);
    expect(get(container, 'securityContext.capabilities.drop')).toEqual(['ALL']);
    for (const key of ['requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory']) expect(get(container, `resources.${key}`), key).toBeDefined();

    const annotations = asObj(get(sts, 'spec.template.metadata.annotations'), 'annotations');
    expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '2381', 'prometheus.io/path': '/metrics' });

    const podLabels = asObj(get(sts, 'spec.template.metadata.labels'), 'pod labels');
    const [pdb] = byKind(docs, 'PodDisruptionBudget');
    expect(get(pdb, 'spec.maxUnavailable')).toBe(1);
    for (const selector of [get(pdb, 'spec.selector.matchLabels'), get(sts, 'spec.selector.matchLabels'), ...byKind(docs, 'Service').map((s) => get(s, 'spec.selector'))]) {
      expect(podLabels).toMatchObject(asObj(selector, 'selector'));
    }
    const client = byKind(docs, 'Service').find((s) => get(s, 'spec.clusterIP') !== 'None');
    expect((get(client, 'spec.ports') as Obj[]).map((p) => p['port'])).toEqual([2379]);
  });

  it('renders with kubectl kustomize when kubectl is installed', (ctx) => {
    // Goal: the kustomization builds (no API server needed) and puts everything in the gavel namespace.
    if (!commandExists('kubectl')) ctx.skip('skipped: kubectl is not installed (optional; the structure tests above cover the manifests)');
    const rendered = run('kubectl', ['kustomize', join(k8sDir)]);
    expect(rendered.status, rendered.output).toBe(0);
    expect(rendered.output).toMatch(/^kind: StatefulSet$/m);
    expect(rendered.output.match(/^ {2}namespace: gavel$/gm)?.length).toBe(4); // 2 Services, StatefulSet, PDB
  });
});

// ---------------------------------------------------------------------------------------------

describe('Prometheus', () => {
  it('passes promtool check config (which also loads alerts.yml)', (ctx) => {
    // Goal: Prometheus would accept the compose scrape configuration and its rule file.
    needPromtool(ctx);
    const result = run('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    expect(result.status, result.output).toBe(0);
  });

  it('passes promtool check rules', (ctx) => {
    // Goal: every alert expression and template is valid.
    needPromtool(ctx);
    const result = run('promtool', ['check', 'rules', 'deploy/prometheus/alerts.yml']);
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS: 8 rules found');
  });

  it('passes promtool test rules: each alert fires on synthetic series when it should and not otherwise', (ctx) => {
    // Goal: the alerts' thresholds, `for` durations and annotations behave as documented (including all members down).
    needPromtool(ctx);
    const result = run('promtool', ['test', 'rules', 'deploy/prometheus/alerts.test.yml']);
    expect(result.status, result.output).toBe(0);
  });

  it('has the eight specified alerts, each with a severity, a summary and a description, on known metrics', (ctx) => {
    // Goal: the rule set is complete, every alert is actionable, and no alert queries a metric gavel does not expose.
    needYaml(ctx);
    const rules = readAlertRules();
    expect(rules.map((r) => r.alert)).toEqual([
      'GavelNoLeader',
      'GavelFrequentLeaderChanges',
      'GavelFailedProposals',
      'GavelSlowWALFsync',
      'GavelInsufficientMembers',
      'GavelHighGRPCErrorRate',
      'GavelLockWaitersPilingUp',
      'GavelLeaseExpiryStorm',
    ]);
    for (const rule of rules) {
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary']?.length, rule.alert).toBeGreaterThan(10);
      expect(rule.annotations?.['description']?.length, rule.alert).toBeGreaterThan(40);
    }
    const byName = new Map(rules.map((r) => [r.alert, r]));
    expect(byName.get('GavelNoLeader')).toMatchObject({ for: '1m' });
    expect(byName.get('GavelNoLeader')!.expr).toMatch(/etcd_server_has_leader\{[^}]*\} == 0/);
    expect(byName.get('GavelLockWaitersPilingUp')).toMatchObject({ for: '5m' });
    const metrics = alertMetrics();
    expect(metrics.filter((m) => !m.known).map((m) => m.name)).toEqual([]);
    expect(metrics.filter((m) => m.pending).map((m) => `${m.name}: ${m.usedBy.join(', ')}`)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('Grafana dashboard', () => {
  const dashboard = readDashboard();
  const panels = dashboardPanels(dashboard);

  it('has unique panel ids, non-overlapping positions, a data source on every query panel and a refId on every target', () => {
    // Goal: Grafana would lay the dashboard out as intended and every query would run against the chosen Prometheus.
    expect(dashboard.uid).toBe('gavel-overview');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const titles = panels.map((p) => p.title); // dashboardMetrics() names panels by title
    expect(new Set(titles).size).toBe(titles.length);
    const occupied = new Set<string>();
    for (const panel of panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(occupied.has(`${i},${j}`), `${panel.title} overlaps another panel at ${i},${j}`).toBe(false);
          occupied.add(`${i},${j}`);
        }
      }
      if (panel.type === 'row') continue;
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
  });

  it('queries only metrics gavel exposes and covers every area the dashboard promises', () => {
    // Goal: no panel queries a misspelt or nonexistent metric, and each required signal has a panel.
    const metrics = dashboardMetrics();
    expect(metrics.filter((m) => !m.known).map((m) => m.name)).toEqual([]);
    const families = new Set(metrics.map((m) => m.family));
    for (const required of [
      'etcd_server_has_leader',
      'etcd_server_is_leader',
      'etcd_server_leader_changes_seen_total',
      'etcd_server_proposals_committed_total',
      'etcd_server_proposals_applied_total',
      'etcd_server_proposals_pending',
      'etcd_server_proposals_failed_total',
      'etcd_disk_wal_fsync_duration_seconds',
      'etcd_disk_backend_commit_duration_seconds',
      'grpc_server_handled_total',
      'grpc_server_handling_seconds',
      'gavel_lock_holders',
      'gavel_lock_waiters',
      'gavel_coordinator_queue_length',
      'etcd_debugging_server_lease_expired_total',
      'etcd_network_peer_round_trip_time_seconds',
      'etcd_network_peer_sent_bytes_total',
      'etcd_network_peer_received_bytes_total',
    ]) {
      expect(families, required).toContain(required);
    }
    // Histograms are queried through their buckets, with p50 and p99 for the disk latencies.
    const bucketQueries = dashboardQueries().map((q) => q.expr).filter((e) => e.includes('etcd_disk_wal_fsync_duration_seconds_bucket'));
    expect(bucketQueries.some((e) => e.startsWith('histogram_quantile(0.5,'))).toBe(true);
    expect(bucketQueries.some((e) => e.startsWith('histogram_quantile(0.99,'))).toBe(true);
  });

  it('has no pending metrics left: every panel queries a metric a member exports, and none says "Pending"', () => {
    const metrics = dashboardMetrics();
    expect(metrics.filter((m) => m.pending).map((m) => m.name)).toEqual([]);
    for (const panel of panels) expect(panel.description ?? '', panel.title).not.toMatch(/Pending/);
    expect(metrics.filter((m) => m.synthetic).map((m) => m.name)).toEqual(['up']);
    for (const [family, info] of Object.entries(KNOWN_METRICS)) expect(info.pending, family).toBe(false);
  });

  it('has PromQL that promtool accepts in every panel and variable', (ctx) => {
    // Goal: every dashboard query parses as PromQL (Grafana variables replaced by plausible values).
    needPromtool(ctx);
    const queries = dashboardQueries();
    const lines = ['groups:', '  - name: dashboard', '    rules:'];
    queries.forEach((query, i) => {
      lines.push(`      - record: dashboard:query_${i}`, `        expr: ${JSON.stringify(substituteGrafanaVariables(query.expr))}`);
    });
    const file = join(tempDir(), 'dashboard-queries.yml');
    writeFileSync(file, lines.join('\n') + '\n');
    const result = run('promtool', ['check', 'rules', file]);
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  it('extracts metric names from PromQL without picking up functions, labels, keywords or durations', () => {
    // Goal: the name extraction behind dashboardMetrics() is itself right on the shapes the dashboard uses.
    expect(metricNamesIn('histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{job="gavel", instance=~"$instance"}[$__rate_interval])))')).toEqual(['a_bucket']);
    expect(metricNamesIn('sum by (grpc_method) (x{grpc_type!="unary"}) - sum by (grpc_method) (y) > bool 1e3')).toEqual(['x', 'y']);
    expect(metricNamesIn('sum(up{job="gavel"} == bool 1) < ((count(up{job="gavel"}) + 1) / 2)')).toEqual(['up']);
    expect(metricNamesIn('rate(c_total[5m] offset 1h) / on (instance) group_left (To) d')).toEqual(['c_total', 'd']);
  });
});

describe('deploy/README.md', () => {
  it('describes every file under deploy/ and states plainly how the files are validated', () => {
    // Goal: an operator finds each file explained, and nobody mistakes static checks for a tested deployment.
    const readme = read('deploy/README.md');
    expect(readme.replace(/\s+/g, ' ')).toContain(
      "No container engine runs in this project's CI; the container, compose and Kubernetes files are validated statically (YAML/JSON parse, structure checks), not run.",
    );
    for (const file of filesUnder(DEPLOY_DIR).map((f) => relative(DEPLOY_DIR, f))) {
      if (file === 'README.md') continue;
      // The file itself, or a directory above it (`kubernetes/`, `grafana/provisioning/`).
      const ancestors: string[] = [];
      for (let dir = dirname(file); dir !== '.'; dir = dirname(dir)) ancestors.push(`${dir}/`);
      const mentioned = readme.includes(file) || ancestors.some((dir) => readme.includes(`\`${dir}\``));
      expect(mentioned, `deploy/README.md mentions ${file}`).toBe(true);
    }
    for (const port of ['2379', '2380', '2381']) expect(readme).toContain(`| ${port} |`);
  });
});
