// The ledger as the chaos campaign runs it: every process separately started (two API
// instances, the processors, the keepers, the reconciler, the provider simulator), in a
// namespace of its own, with Postgres behind a TCP proxy the campaign can cut, a Redis of its
// own it can kill and restart empty, and (if asked) the shared Kafka broker it can SIGKILL.
// Processes that exit on their own are restarted with backoff, as `npm start` does.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Admin } from 'kafkajs';
import { loadConfig, topicsOf, type Config, type Topics } from '../../infra/config.ts';
import { openRuntime, setupNamespace, removeNamespace } from '../../infra/runtime.ts';
import { kafkaClient } from '../../infra/kafka.ts';
import { pgPool } from '../../infra/db.ts';
import { logger } from '../../infra/log.ts';
import { generateSigningKeyPem, publicKeyOf } from '../../domain/tokens.ts';
import { databaseUrlVia, freePort, ownRedis, tcpProxy, type OwnRedis, type TcpProxy } from '../helpers/outages.ts';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the chaos processes are called, and the bin/ entry point each runs. */
export const PROCESSES = {
  'api-1': 'api', 'api-2': 'api', projector: 'projector', crediting: 'crediting', payouts: 'payouts',
  'packet-keeper': 'packet-keeper', 'coupon-keeper': 'coupon-keeper', reconciler: 'reconciler', provider: 'payment-provider',
} as const;
export type ProcessName = keyof typeof PROCESSES;
export const PROCESS_NAMES = Object.keys(PROCESSES) as ProcessName[];

export interface ExitRecord {
  at: number; code: number | null; signal: string | null; planned: boolean;
  /** How long it had run. */
  ranMs: number;
  /** It failed while starting (its top-level await rejected: a dependency down when it started), not while running. */
  atStartup: boolean;
  /** The end of what it wrote to stderr (why it exited). */
  tail: string;
}

/** Most bytes of one process's stderr kept in its log file. */
const LOG_CAP_BYTES = 8 * 1024 * 1024;

/** One bin/ process: started, SIGKILLed and started again on demand; restarted with backoff if it exits on its own. */
export class ManagedProcess {
  child: ChildProcess | null = null;
  startedAt = 0;
  readonly exits: ExitRecord[] = [];
  starts = 0;
  errorLines = 0;
  private logBytes = 0;
  private planned = false;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private readonly log: WriteStream;

  constructor(readonly name: ProcessName, private readonly env: Record<string, string>, logDir: string) {
    this.log = createWriteStream(join(logDir, `${name}.log`));
  }

  get running(): boolean {
    return this.child !== null;
  }

  start(): void {
    if (this.child || this.stopped) return;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.planned = false;
    const child = spawn(process.execPath, ['--import', 'tsx', `bin/${PROCESSES[this.name]}.ts`], {
      cwd: root, env: { ...process.env, ...this.env }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    this.startedAt = Date.now();
    this.starts++;
    let partial = '';
    let tail = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-8000);
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.includes('"level":"error"') || line.includes('"level":"fatal"')) this.errorLines++;
      if (this.logBytes < LOG_CAP_BYTES) {
        this.logBytes += chunk.length;
        this.log.write(chunk);
      }
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      const planned = this.planned || this.stopped;
      const ranMs = Date.now() - this.startedAt;
      // A rejected top-level await of bin/*.ts (its setup: a dependency was down): Node reports it from run_main, with the bin's frame.
      const atStartup = tail.includes('node:internal/modules/run_main') || /at async <anonymous> \(\S*\/bin\/[\w-]+\.ts:/.test(tail);
      this.exits.push({ at: Date.now(), code, signal, planned, ranMs, atStartup, tail: tail.slice(-1200) });
      if (planned) return;
      // Died on its own (a dependency down at its start, or a bug): restarted as `npm start` does.
      this.failures = ranMs > 30_000 ? 1 : this.failures + 1;
      const inMs = Math.min(5_000, 500 * 2 ** (this.failures - 1));
      this.restartTimer = setTimeout(() => { this.restartTimer = null; this.start(); }, inMs);
    });
  }

  /** SIGKILL; not restarted until start() is called. Resolves once it has exited. */
  async kill(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    if (!child) return;
    this.planned = true;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  /** Unexpected exits (not our SIGKILLs, not the final stop). */
  unplannedExits(): ExitRecord[] {
    return this.exits.filter((e) => !e.planned);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
    this.log.end();
  }
}

/** The payment provider's behaviour the campaign sets (PUT /admin/config). */
export interface ProviderBehaviour { failureRate: number; ambiguousFailureRate: number; latencyMs: number; outage: boolean }
export const HEALTHY_PROVIDER: ProviderBehaviour = { failureRate: 0, ambiguousFailureRate: 0, latencyMs: 5, outage: false };

export interface ClusterOptions {
  /** Whether the campaign may SIGKILL and restart the shared Kafka broker. */
  killKafka: boolean;
  logDir?: string;
}

export interface Cluster {
  ns: string;
  cfg: Config;
  topics: Topics;
  /** Direct to Postgres (the campaign's own checks), in the namespace's schema. */
  pool: pg.Pool;
  /** The provider's own records (schema <ns>_psp). */
  pspPool: pg.Pool;
  kafkaAdmin(): Promise<Admin>;
  proxy: TcpProxy;
  redis: OwnRedis;
  procs: Record<ProcessName, ManagedProcess>;
  apiUrls: string[];
  providerUrl: string;
  providerKey: string;
  reconcilerUrl: string;
  upstream: { id: string; secret: string };
  adminToken: string;
  userKeyPem: string;
  userKeyId: string;
  /** Environment of the spawned processes (and of npm run reconcile / invariants, with DATABASE_URL direct). */
  env: Record<string, string>;
  logDir: string;
  provider: ProviderBehaviour;
  setProvider(b: Partial<ProviderBehaviour>): Promise<void>;
  killKafka(): Promise<void>;
  startKafka(): Promise<void>;
  close(): Promise<void>;
}

export function chaosNamespace(): string {
  return `t_chaos_${randomBytes(4).toString('hex')}`;
}

export function kafkaPidFile(): string {
  return join(process.env.HONGBAO_LOCAL_DIR ?? join(root, '.local'), 'kafka.pid');
}

export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.setTimeout(1_000, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export function brokerAddress(cfg: Config): { host: string; port: number } {
  const [host, port] = cfg.kafkaBrokers[0]!.split(':');
  return { host: host!, port: Number(port ?? 9092) };
}

/** bash infra/up.sh: starts whatever is not running (here: the broker), waits for health. */
export async function infraUp(): Promise<void> {
  const child = spawn('bash', ['infra/up.sh'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err = (err + c.toString()).slice(-4000); });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`infra/up.sh failed (${code}): ${err}`);
}

export async function startCluster(opts: ClusterOptions, ns = chaosNamespace()): Promise<Cluster> {
  const cfg = loadConfig({ namespace: ns, partitions: 3 });
  await setupNamespace(cfg);
  const logDir = opts.logDir ?? join(root, '.local', 'chaos', ns);
  mkdirSync(logDir, { recursive: true });
  const pgUrl = new URL(cfg.databaseUrl);
  const proxy = await tcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  const redis = await ownRedis();
  const quiet = logger({ svc: 'chaos' });
  const pool = pgPool(cfg.databaseUrl, ns, 4, quiet);
  const pspPool = pgPool(cfg.databaseUrl, `${ns}_psp`, 2, quiet);
  const kafka = kafkaClient(cfg, `${ns}-chaos`);
  let admin: Admin | null = null;

  const upstream = { id: 'chaos-upstream', secret: randomBytes(16).toString('hex') };
  const adminToken = randomBytes(16).toString('hex');
  const userKeyPem = generateSigningKeyPem();
  const userKeyId = 'chaos-login';
  const providerKey = randomBytes(16).toString('hex');
  const [api1, api2, providerPort, reconcilerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const providerUrl = `http://127.0.0.1:${providerPort}`;
  const env: Record<string, string> = {
    LEDGER_NAMESPACE: ns, KAFKA_PARTITIONS: '3', LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrlVia(cfg.databaseUrl, proxy.port), REDIS_URL: redis.url,
    UPSTREAM_KEYS: `${upstream.id}=${upstream.secret}`, ADMIN_TOKEN: adminToken, TOKEN_SIGNING_KEY: generateSigningKeyPem(),
    USER_TOKEN_PUBLIC_KEYS: JSON.stringify({ [userKeyId]: publicKeyOf(userKeyPem).export({ type: 'spki', format: 'pem' }) }),
    PROVIDER_URL: providerUrl, PROVIDER_PORT: String(providerPort), PROVIDER_API_KEY: providerKey, PROVIDER_LATENCY_MS: '5',
    PAYOUT_RETRY_BASE_MS: '200', PAYOUT_RETRY_CAP_MS: '2000', BREAKER_OPEN_MS: '1000',
    // Red packets that expire within the campaign, refunded and swept promptly.
    PACKET_MIN_EXPIRY_SEC: '5', PACKET_KEEPER_INTERVAL_SEC: '1', PACKET_CLAIM_SWEEP_SEC: '3',
    CAMPAIGN_POLL_MS: '1000', COUPON_KEEPER_INTERVAL_MS: '500',
    RECONCILER_PORT: String(reconcilerPort), RECONCILE_INTERVAL_SEC: '10', RECONCILE_BEHIND_SEC: '60',
    RECONCILE_CREDIT_GRACE_SEC: '60', RECONCILE_PAYOUT_GRACE_SEC: '60', RECONCILE_WORKERS: '1',
  };
  const procs = {} as Record<ProcessName, ManagedProcess>;
  for (const name of PROCESS_NAMES) {
    const extra: Record<string, string> = name === 'api-1' ? { API_PORT: String(api1) } : name === 'api-2' ? { API_PORT: String(api2) } : {};
    procs[name] = new ManagedProcess(name, { ...env, ...extra }, logDir);
  }

  const cluster: Cluster = {
    ns, cfg, topics: topicsOf(ns), pool, pspPool, proxy, redis, procs, logDir,
    apiUrls: [`http://127.0.0.1:${api1}`, `http://127.0.0.1:${api2}`], providerUrl, providerKey,
    reconcilerUrl: `http://127.0.0.1:${reconcilerPort}`, upstream, adminToken, userKeyPem, userKeyId, env,
    provider: { ...HEALTHY_PROVIDER },
    async kafkaAdmin() {
      if (!admin) {
        const a = kafka.admin();
        await a.connect();
        admin = a;
      }
      return admin;
    },
    async setProvider(b) {
      cluster.provider = { ...cluster.provider, ...b };
      const res = await fetch(`${providerUrl}/admin/config`, {
        method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${providerKey}` },
        body: JSON.stringify(cluster.provider), signal: AbortSignal.timeout(3_000),
      });
      if (!res.ok) throw new Error(`provider config: HTTP ${res.status}`);
    },
    async killKafka() {
      if (!opts.killKafka) throw new Error('killing the shared Kafka broker was not enabled');
      const pid = Number(readFileSync(kafkaPidFile(), 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no Kafka pid in ${kafkaPidFile()}`);
      process.kill(pid, 'SIGKILL');
      const { host, port } = brokerAddress(cfg);
      for (let i = 0; i < 100 && (await portOpen(host, port)); i++) await sleep(100);
    },
    async startKafka() {
      await infraUp();
    },
    async close() {
      await Promise.all(PROCESS_NAMES.map((n) => procs[n].stop()));
      await proxy.close();
      const { host, port } = brokerAddress(cfg);
      // Never leave the shared broker down, whatever happened.
      if (opts.killKafka && !(await portOpen(host, port))) await infraUp().catch((err) => quiet.error('could not restart Kafka', { err }));
      await admin?.disconnect().catch(() => {});
      const rt = await openRuntime('chaos-cleanup', { namespace: ns, redisUrl: redis.url }, 2);
      try {
        await removeNamespace(rt);
      } finally {
        await rt.close();
      }
      await redis.kill();
      await pool.end().catch(() => {});
      await pspPool.end().catch(() => {});
    },
  };
  return cluster;
}

/** Starts every process and waits until both API instances, the provider and the reconciler answer. */
export async function bootCluster(c: Cluster): Promise<void> {
  // The API first: it sets the namespace up (already done) and its relay; then the rest.
  for (const name of PROCESS_NAMES) c.procs[name].start();
  const deadline = Date.now() + 90_000;
  const up = async (url: string) => fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status < 500, () => false);
  for (const url of [...c.apiUrls.map((u) => `${u}/health`), `${c.reconcilerUrl}/health`]) {
    while (!(await up(url))) {
      if (Date.now() > deadline) throw new Error(`${url} did not come up`);
      await sleep(200);
    }
  }
  while (true) {
    try {
      await c.setProvider({});
      break;
    } catch {
      if (Date.now() > deadline) throw new Error('the provider did not come up');
      await sleep(200);
    }
  }
}
