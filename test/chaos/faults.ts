// The fault schedule: every process SIGKILLed, the Kafka broker SIGKILLed (if enabled),
// Redis killed and restarted empty, Postgres stopped at once (the proxy in front of it cut),
// and the payment provider failing, timing out and losing answers; each at least twice,
// spread over the campaign in three lanes (processes, infrastructure, provider) that run
// side by side. After each fault, how long until the ledger works again is measured.
import { seeded } from '../helpers/campaigns.ts';
import { projectorName } from '../../projections/ledger-projector.ts';
import { PROCESS_NAMES, type Cluster, type ProcessName } from './cluster.ts';

export type FaultKind = `kill:${ProcessName}` | 'kafka' | 'redis' | 'postgres' | 'provider-fail' | 'provider-timeout' | 'provider-lose';

export interface Recovery {
  /** What was measured ("API serving", "partitions caught up", ...). */
  what: string;
  /** From the moment the fault ended (the process started again, the service back), ms; null if it never happened in time. */
  ms: number | null;
  /** The target (API: 5 s; a processor's partitions: 10 s), if there is one. */
  targetMs: number | null;
  doneAt: number | null;
}

export interface FaultRecord {
  kind: FaultKind;
  plannedAt: number;
  startedAt: number;
  /** When the process was started again / the service was back / the provider healthy again. */
  restoredAt: number;
  recoveries: Recovery[];
  error?: string;
}

export interface FaultPlan { at: number; kind: FaultKind; downMs: number }

/** After a fault's recovery, a few more seconds in which a 503 is still expected. */
export const WINDOW_TAIL_MS = 5_000;
const API_TARGET_MS = 5_000;
const PROCESSOR_TARGET_MS = 10_000;
const MEASURE_LIMIT_MS = 120_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Each kind `repeats` times, in three lanes over [startMs, endMs] of the load: kills of the
 * processes; Kafka, Postgres and Redis outages (never two at once); provider misbehaviour.
 */
export function planFaults(seed: number, startMs: number, endMs: number, repeats: number, killKafka: boolean): FaultPlan[][] {
  const rng = seeded(seed ^ 0x5eed);
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  // A lane's faults in the order drawn, spaced by how long each takes (down, restart, the first
  // recovery), with the slack left in the window shared out between them.
  const lane = (kinds: FaultKind[], down: (k: FaultKind) => number): FaultPlan[] => {
    const all: FaultKind[] = [];
    for (let r = 0; r < repeats; r++) all.push(...shuffle([...kinds]));
    const plans = all.map((kind) => ({ kind, downMs: down(kind), at: 0 }));
    const takes = (p: { kind: FaultKind; downMs: number }) => p.downMs + (p.kind === 'kafka' ? 20_000 : 2_500);
    const slack = Math.max(0, endMs - startMs - plans.reduce((n, p) => n + takes(p), 0)) / plans.length;
    let at = startMs;
    for (const p of plans) {
      p.at = Math.round(at + rng() * slack * 0.5);
      at += takes(p) + slack;
    }
    return plans;
  };
  const processes = lane(PROCESS_NAMES.map((n) => `kill:${n}` as FaultKind), () => 500 + Math.round(rng() * 2_000));
  const infra = lane([...(killKafka ? ['kafka' as const] : []), 'redis', 'postgres'], (k) => (k === 'kafka' ? 2_000 : k === 'redis' ? 1_500 + Math.round(rng() * 1_500) : 2_000 + Math.round(rng() * 3_000)));
  const provider = lane(['provider-fail', 'provider-timeout', 'provider-lose'], () => 5_000 + Math.round(rng() * 4_000));
  return [processes, infra, provider];
}

/** How long a lane waits for a conflicting fault (still down or recovering) to be over before it injects anyway. */
const MAX_WAIT_FOR_QUIET_MS = 5_000;

export class FaultRunner {
  readonly records: FaultRecord[] = [];
  private readonly measuring = new Set<Promise<void>>();
  /** Faults not over yet: down, or their recovery still being measured. */
  private readonly active = new Set<FaultRecord>();
  private readonly jobs = new Map<FaultRecord, Promise<void>[]>();

  constructor(private readonly c: Cluster, private readonly log: (s: string) => void) {}

  /**
   * Runs the lanes side by side; each fault of a lane starts at its time, after the previous
   * one of its lane ended. A lane that fell behind finishes its plan after the load (every
   * fault is injected as often as planned).
   */
  async run(lanes: FaultPlan[][], loadStart: number): Promise<void> {
    await Promise.all(lanes.map(async (lane) => {
      for (const [i, plan] of lane.entries()) {
        const wait = loadStart + plan.at - Date.now();
        if (wait > 0) await sleep(wait);
        // So that recoveries can be measured apart, a fault waits a while for conflicting ones to
        // be over, but not past the next one's time: the lane keeps to its schedule.
        const next = lane[i + 1] ? loadStart + lane[i + 1]!.at : Infinity;
        for (const until = Math.min(Date.now() + MAX_WAIT_FOR_QUIET_MS, next); Date.now() < until && [...this.active].some((r) => conflicting(r.kind, plan.kind));) await sleep(200);
        await this.inject(plan);
      }
    }));
  }

  /** Waits for the recovery measurements still running. */
  async settle(): Promise<void> {
    while (this.measuring.size > 0) await Promise.all([...this.measuring]);
  }

  private async inject(plan: FaultPlan): Promise<void> {
    const c = this.c;
    const rec: FaultRecord = { kind: plan.kind, plannedAt: plan.at, startedAt: Date.now(), restoredAt: 0, recoveries: [] };
    this.records.push(rec);
    this.active.add(rec);
    this.log(`fault: ${plan.kind} (${(plan.downMs / 1000).toFixed(1)} s)`);
    try {
      if (plan.kind.startsWith('kill:')) {
        const name = plan.kind.slice(5) as ProcessName;
        // One API instance at a time: the other must be serving before this one is killed.
        if (name === 'api-1' || name === 'api-2') {
          const other = c.apiUrls[name === 'api-1' ? 1 : 0]!;
          for (const until = Date.now() + 30_000; Date.now() < until && !(await this.apiServes(other).catch(() => false));) await sleep(200);
          rec.startedAt = Date.now();
        }
        await c.procs[name].kill();
        await sleep(plan.downMs);
        c.procs[name].start();
        rec.restoredAt = Date.now();
        this.measure(rec, this.afterRestart(name, rec.restoredAt));
      } else if (plan.kind === 'kafka') {
        await c.killKafka();
        await sleep(plan.downMs);
        await c.startKafka();
        rec.restoredAt = Date.now();
        this.measure(rec, [
          { what: 'journal produced what it held', targetMs: null, probe: this.journalDrained(rec.restoredAt) },
          { what: 'projection caught up', targetMs: null, probe: this.projectorCaughtUp() },
        ]);
      } else if (plan.kind === 'redis') {
        await c.redis.kill();
        await sleep(plan.downMs);
        await c.redis.start();
        rec.restoredAt = Date.now();
        this.measure(rec, [{ what: 'APIs healthy', targetMs: API_TARGET_MS, probe: () => this.apisHealthy() }]);
      } else if (plan.kind === 'postgres') {
        await c.proxy.cut();
        await sleep(plan.downMs);
        await c.proxy.restore();
        rec.restoredAt = Date.now();
        this.measure(rec, [
          { what: 'APIs healthy', targetMs: API_TARGET_MS, probe: () => this.apisHealthy() },
          { what: 'projection caught up', targetMs: PROCESSOR_TARGET_MS, probe: this.projectorCaughtUp() },
        ]);
      } else {
        const bad = plan.kind === 'provider-fail' ? { failureRate: 0.5 } : plan.kind === 'provider-timeout' ? { latencyMs: 6_000 } : { ambiguousFailureRate: 0.5 };
        await this.provider(bad);
        await sleep(plan.downMs);
        await this.provider({ failureRate: 0, ambiguousFailureRate: 0, latencyMs: 5 });
        rec.restoredAt = Date.now();
        this.measure(rec, [{ what: 'payouts accepted before it settled', targetMs: null, probe: this.payoutsSettled() }]);
      }
    } catch (err) {
      rec.error = (err as Error).message;
      rec.restoredAt ||= Date.now();
      this.log(`fault ${plan.kind} failed: ${rec.error}`);
    }
    // Over once its recoveries are measured (or 20 s after it ended, if they take longer).
    void Promise.race([Promise.all(this.jobs.get(rec) ?? []), sleep(20_000)]).then(() => sleep(1_000)).then(() => this.active.delete(rec));
  }

  /** Sets the provider's behaviour, trying again while it is down (the process lane may be restarting it). */
  private async provider(b: Parameters<Cluster['setProvider']>[0]): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await this.c.setProvider(b);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }

  private afterRestart(name: ProcessName, at: number): { what: string; targetMs: number | null; probe: () => Promise<boolean> }[] {
    const c = this.c;
    switch (name) {
      case 'api-1':
      case 'api-2':
        return [{ what: 'API serving', targetMs: API_TARGET_MS, probe: () => this.apiServes(c.apiUrls[name === 'api-1' ? 0 : 1]!) }];
      case 'projector':
        return [{ what: 'partitions caught up', targetMs: PROCESSOR_TARGET_MS, probe: this.projectorCaughtUp() }];
      case 'crediting':
        return [{ what: 'partitions caught up', targetMs: PROCESSOR_TARGET_MS, probe: this.groupCaughtUp(`${c.ns}.crediting`) }];
      case 'payouts':
        return [{ what: 'partitions caught up', targetMs: PROCESSOR_TARGET_MS, probe: this.groupCaughtUp(`${c.ns}.payouts`) }];
      case 'packet-keeper':
        return [{ what: 'packets due refunded', targetMs: PROCESSOR_TARGET_MS, probe: this.packetsRefunded(at) }];
      case 'coupon-keeper':
        return [{ what: 'holds due unfrozen', targetMs: PROCESSOR_TARGET_MS, probe: this.holdsReleased(at) }];
      case 'reconciler':
        return [{ what: 'serving /health', targetMs: null, probe: () => fetch(`${c.reconcilerUrl}/health`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false) }];
      case 'provider':
        // Its behaviour is in memory: the fault in force (if any) is put back as soon as it answers.
        return [{ what: 'answering (behaviour restored)', targetMs: null, probe: () => c.setProvider({}).then(() => true, () => false) }];
    }
  }

  private measure(rec: FaultRecord, probes: { what: string; targetMs: number | null; probe: () => Promise<boolean> }[]): void {
    for (const p of probes) {
      const r: Recovery = { what: p.what, ms: null, targetMs: p.targetMs, doneAt: null };
      rec.recoveries.push(r);
      const job = (async () => {
        while (Date.now() - rec.restoredAt < MEASURE_LIMIT_MS) {
          if (await p.probe().catch(() => false)) {
            r.doneAt = Date.now();
            r.ms = r.doneAt - rec.restoredAt;
            return;
          }
          await sleep(100);
        }
      })();
      const tracked = job.finally(() => this.measuring.delete(tracked));
      this.measuring.add(tracked);
      this.jobs.set(rec, [...(this.jobs.get(rec) ?? []), tracked]);
    }
  }

  private async apiServes(url: string): Promise<boolean> {
    const res = await fetch(`${url}/v1/admin/journal`, { headers: { authorization: `Bearer ${this.c.adminToken}` }, signal: AbortSignal.timeout(1_000) });
    return res.status === 200;
  }

  private async apisHealthy(): Promise<boolean> {
    for (const url of this.c.apiUrls) {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await res.json()) as { status?: string };
      if (body.status !== 'ok') return false;
    }
    return true;
  }

  /** The end offsets of a topic, read once (retried while Kafka is away). */
  private async ends(topic: string): Promise<Map<number, number>> {
    for (;;) {
      try {
        const admin = await this.c.kafkaAdmin();
        return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)]));
      } catch {
        await sleep(250);
      }
    }
  }

  /** Whether the projector's stored offsets reached the ends the topics had when first asked (just after the fault ended). */
  projectorCaughtUp(): () => Promise<boolean> {
    const c = this.c;
    let target: Promise<Map<string, number>> | null = null;
    return async () => {
      target ??= (async () => {
        const m = new Map<string, number>();
        for (const topic of [c.topics.wallet, c.topics.budget]) for (const [p, end] of await this.ends(topic)) m.set(`${topic}/${p}`, end);
        return m;
      })();
      const want = await target;
      const { rows } = await c.pool.query<{ topic: string; partition: number; next_offset: number }>(
        'select topic, partition, next_offset from consumer_offsets where consumer = $1', [projectorName(c.ns)]);
      const have = new Map(rows.map((r) => [`${r.topic}/${r.partition}`, Number(r.next_offset)]));
      return [...want].every(([k, end]) => end === 0 || (have.get(k) ?? 0) >= end);
    };
  }

  /** Whether a consumer group's committed offsets on the wallet topic reached the ends it had when first asked. */
  groupCaughtUp(groupId: string): () => Promise<boolean> {
    const c = this.c;
    let target: Promise<Map<number, number>> | null = null;
    return async () => {
      target ??= this.ends(c.topics.wallet);
      const want = await target;
      const admin = await c.kafkaAdmin();
      const [got] = await admin.fetchOffsets({ groupId, topics: [c.topics.wallet] });
      const have = new Map((got?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
      return [...want].every(([p, end]) => end === 0 || (have.get(p) ?? -1) >= end);
    };
  }

  /** Whether every packet that had expired, still open, when the keeper restarted is refunded (or finished). */
  packetsRefunded(at: number): () => Promise<boolean> {
    return async () => {
      const { rows } = await this.c.pool.query<{ n: number }>(
        `select count(*)::int as n from packets where status = 'open' and expires_at < to_timestamp($1 / 1000.0)`, [at]);
      return rows[0]!.n === 0;
    };
  }

  /** Whether every coupon hold that had ended when the keeper restarted is released. */
  holdsReleased(at: number): () => Promise<boolean> {
    return async () => {
      const { rows } = await this.c.pool.query<{ n: number }>(
        'select count(*)::int as n from pack_states where hold_expires_at < to_timestamp($1 / 1000.0)', [at]);
      return rows[0]!.n === 0;
    };
  }

  /** Whether nothing the journal accepted before `at` is still unproduced. */
  journalDrained(at: number): () => Promise<boolean> {
    return async () => {
      const { rows } = await this.c.pool.query<{ n: number }>(
        'select count(*)::int as n from journal_outbox where accepted_at < to_timestamp($1 / 1000.0)', [at]);
      return rows[0]!.n === 0;
    };
  }

  /** Whether every withdrawal projected as in flight when first asked is settled (or failed) now. */
  payoutsSettled(): () => Promise<boolean> {
    let open: Promise<string[]> | null = null;
    return async () => {
      open ??= this.c.pool.query<{ id: string }>(`select withdrawal_id::text as id from withdrawals where status = 'withdrawing'`).then((r) => r.rows.map((x) => x.id));
      const ids = await open;
      if (ids.length === 0) return true;
      const { rows } = await this.c.pool.query<{ n: number }>(
        `select count(*)::int as n from withdrawals where withdrawal_id = any($1::uuid[]) and status = 'withdrawing'`, [ids]);
      return rows[0]!.n === 0;
    };
  }
}

/**
 * Measured from the campaign's own requests afterwards: after Redis came back, when was a
 * draw (which needs its prize counters rebuilt) answered again; after Postgres, a grant; after
 * Kafka, a withdrawal (which credits the user's rewards through Kafka first). The time from
 * the service's return until the first request of that kind sent after it got a final answer.
 */
export function servedAgain(records: FaultRecord[], attempts: { route: string; at: number; ms: number; status: number | string }[]): void {
  const routeOf: Partial<Record<FaultKind, string>> = { redis: 'draw', postgres: 'grant', kafka: 'withdrawal' };
  for (const f of records) {
    const route = routeOf[f.kind];
    const after = attempts.filter((a) => a.route === route && a.at >= f.restoredAt);
    // Nothing of the kind was sent after it (the load had ended): nothing to measure.
    if (!route || after.length === 0) continue;
    const first = after.filter((a) => typeof a.status === 'number' && a.status < 500)
      .reduce<{ at: number; ms: number } | null>((best, a) => (!best || a.at + a.ms < best.at + best.ms ? a : best), null);
    const doneAt = first ? first.at + first.ms : null;
    f.recoveries.push({ what: `${route}s answered again`, ms: doneAt === null ? null : doneAt - f.restoredAt, targetMs: null, doneAt });
  }
}

/** The windows in which a 503 (or a process exiting by itself) is expected: each fault, until its recovery plus a tail. */
export function faultWindows(records: FaultRecord[]): { kind: FaultKind; from: number; to: number }[] {
  return records.map((r) => {
    const recovered = Math.max(r.restoredAt, ...r.recoveries.map((x) => x.doneAt ?? r.restoredAt + 30_000));
    return { kind: r.kind, from: r.startedAt, to: recovered + WINDOW_TAIL_MS };
  });
}

const isInfra = (k: FaultKind) => k === 'kafka' || k === 'postgres' || k === 'redis';
const payoutSide = (k: FaultKind) => k === 'kill:payouts' || k === 'kill:crediting' || k === 'kill:provider' || k.startsWith('provider');

/**
 * Whether a recovery measured after one fault depends on another fault being over: Kafka,
 * Postgres and Redis outages against everything; the provider (its faults, its restart) and
 * the projector (payouts and share credits wait for the projection) against the payouts and
 * crediting measures.
 */
export function conflicting(a: FaultKind, b: FaultKind): boolean {
  if (isInfra(a) || isInfra(b)) return true;
  const disturbsPayouts = (k: FaultKind) => k.startsWith('provider') || k === 'kill:provider' || k === 'kill:projector';
  return (payoutSide(a) && disturbsPayouts(b)) || (payoutSide(b) && disturbsPayouts(a));
}

/** Conflicting faults overlapping [from, to]: a recovery measured across one of them is shown, not held to its target. */
export function confounders(records: FaultRecord[], self: FaultRecord, from: number, to: number): FaultKind[] {
  return records.filter((r) => r !== self && conflicting(self.kind, r.kind) && r.startedAt <= to && r.restoredAt + WINDOW_TAIL_MS >= from).map((r) => r.kind);
}
