import type pg from 'pg';
import type { LedgerEvent } from '../domain/events.ts';
import type { Config, Topics } from './config.ts';
import { routeOf, type EventPublisher } from './publisher.ts';
import type { Logger } from './log.ts';

/**
 * The command journal (QQ's "klog"), in Postgres. A command is accepted when its decision,
 * its answer and the events it must produce commit together (`journal_accept`, whose current
 * form is infra/migrations/011_journal_outbox.sql: the command's key and answer in `journal`,
 * its events in `journal_outbox`); the answer is sent after that commit, and the relay below
 * produces the events to Kafka afterwards. So a Kafka outage delays events and loses none, a SIGKILL of
 * the API loses nothing it answered, and a retry of the same command (order number, draw id,
 * funding id) gets its first answer for as long as the journal keeps it — whatever Redis
 * remembers.
 *
 * Written by hand rather than with a queue library: the guarantee is that the budget check,
 * the order memory and the events commit in one Postgres transaction, and that commits are
 * shared by concurrent requests (group commit), which no library here gives.
 */
export interface JournalCommand<A> {
  /** One command, one answer: e.g. `grant:<tokenId>`. */
  key: string;
  /** Produced in this order by the relay; they share their order key (user, sender, activity). */
  events: LedgerEvent[];
  /** What this command and every retry of it are told. */
  answer: A;
  /**
   * Budget this command spends; refused (exhausted) when the activity cannot cover it. The
   * command's one TokenIssued (of that activity and amount) is journaled carrying the slice
   * of the activity's reservations it took (budgetSliceEnd, budgetFunded: ledger I10).
   */
  reserve?: { activityId: string; amount: number };
  /** Budget this command adds, once per funding id for ever. */
  fund?: { activityId: string; fundingId: string; amount: number };
  /** Something else only one command may take (a red packet's share); refused (taken) when another has it. */
  guard?: string;
}

export type Acceptance<A> =
  | { outcome: 'accepted' }
  | { outcome: 'existing'; answer: A }
  | { outcome: 'exhausted'; remaining: number }
  /** The guard belongs to another command; its answer. */
  | { outcome: 'taken'; answer: A };

/** The journal could not be written: nothing was accepted, and the caller answers 503. */
export class JournalUnavailable extends Error {
  constructor(cause: unknown) {
    super(`the command journal could not be written: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

interface Pending { cmd: JournalCommand<unknown>; shard: number; resolve(a: Acceptance<unknown>): void; reject(e: unknown): void }

/** The relay shard of an order key: a fixed string hash, so every instance agrees. */
export function shardOf(orderKey: string, shards: number): number {
  let h = 2166136261;
  for (let i = 0; i < orderKey.length; i++) h = Math.imul(h ^ orderKey.charCodeAt(i), 16777619);
  return (h >>> 0) % shards;
}

/**
 * A command journal_accept cannot take as it is: no events; or a reservation that is not one
 * TokenIssued of its activity and amount (the slice it takes is recorded in that event), or
 * that also funds (the slice is read before the command's own funding would be added).
 */
function malformedCommand(cmd: JournalCommand<unknown>): string | null {
  if (cmd.events.length === 0) return `command ${cmd.key} has no events`;
  if (!cmd.reserve) return null;
  if (cmd.fund) return `command ${cmd.key} both reserves and funds budget`;
  const tokens = cmd.events.filter((e) => e.type === 'TokenIssued');
  const t = tokens[0];
  if (tokens.length !== 1 || t?.type !== 'TokenIssued' || t.data.activityId !== cmd.reserve.activityId || t.data.amount !== cmd.reserve.amount) {
    return `command ${cmd.key} reserves ${cmd.reserve.amount} of ${cmd.reserve.activityId} but does not carry exactly one TokenIssued of it`;
  }
  return null;
}

export class Journal {
  private queue: Pending[] = [];
  private inFlight = 0;
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly deps: {
    pool: pg.Pool; topics: Topics; shards: number; maxBatch: number;
    /** Concurrent group commits (config journalInFlight says why one by default). */
    maxInFlight?: number;
  }) {}

  /** Called after each commit that accepted something (the local relay wakes at once). */
  onAccepted(fn: () => void): void {
    this.listeners.push(fn);
  }

  accept<A>(cmd: JournalCommand<A>): Promise<Acceptance<A>> {
    const malformed = malformedCommand(cmd);
    if (malformed) return Promise.reject(new Error(malformed));
    const shard = this.shardOfCommand(cmd);
    return new Promise((resolve, reject) => {
      this.queue.push({ cmd, shard, resolve: resolve as Pending['resolve'], reject });
      this.pump();
    });
  }

  /**
   * Journals one command inside the caller's transaction, for a decision that must commit
   * with rows of its own (a withdrawal's request under the user's lock). Not group-committed:
   * the caller's transaction is the unit. The relay is woken after the caller commits.
   */
  async acceptIn<A>(client: pg.PoolClient, cmd: JournalCommand<A>): Promise<Acceptance<A>> {
    const malformed = malformedCommand(cmd);
    if (malformed) throw new Error(malformed);
    const shard = this.shardOfCommand(cmd);
    const { rows } = await client.query<{ r: Acceptance<A>[] }>('select journal_accept($1::jsonb) as r', [JSON.stringify([this.rowOf(cmd, shard)])]);
    return rows[0]!.r[0]!;
  }

  /** Wakes the local relay after a caller's own transaction committed a command. */
  committed(): void {
    for (const fn of this.listeners) fn();
  }

  private shardOfCommand(cmd: JournalCommand<unknown>): number {
    return this.shardOfEvent(cmd.events[0]!);
  }

  /** The shard of an event's order key, for a caller that writes journal rows in its own statement (coupons). */
  shardOfEvent(event: LedgerEvent): number {
    const route = routeOf(this.deps.topics, event.type, event.data as never);
    return shardOf(route.partitionKey ?? route.key, this.deps.shards);
  }

  private rowOf(cmd: JournalCommand<unknown>, shard: number) {
    return {
      key: cmd.key, shard, events: cmd.events, answer: cmd.answer,
      // `token`: where the reservation's TokenIssued is among the events, for journal_accept to record its slice in.
      ...(cmd.reserve ? { reserve: { ...cmd.reserve, token: cmd.events.findIndex((e) => e.type === 'TokenIssued') } } : {}),
      ...(cmd.fund ? { fund: cmd.fund } : {}), ...(cmd.guard ? { guard: cmd.guard } : {}),
    };
  }

  /** The first answer of a command, if the journal has it. */
  async answerOf<A>(key: string): Promise<A | undefined> {
    const { rows } = await this.deps.pool.query<{ answer: A }>('select answer from journal where command_key = $1', [key]);
    return rows[0]?.answer;
  }

  private pump(): void {
    // Requests arriving while a commit is in flight wait for the next one and share it.
    while (this.queue.length > 0 && this.inFlight < (this.deps.maxInFlight ?? 1)) {
      const batch = this.queue.splice(0, this.deps.maxBatch);
      this.inFlight++;
      void this.commit(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async commit(batch: Pending[]): Promise<void> {
    const payload = batch.map(({ cmd, shard }) => this.rowOf(cmd, shard));
    let results: Acceptance<unknown>[];
    try {
      results = await this.acceptBatch(JSON.stringify(payload));
    } catch (err) {
      const failure = new JournalUnavailable(err);
      for (const p of batch) p.reject(failure);
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]!));
    if (results.some((r) => r.outcome === 'accepted')) this.committed();
  }

  private async acceptBatch(payload: string): Promise<Acceptance<unknown>[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { rows } = await this.deps.pool.query<{ r: Acceptance<unknown>[] }>('select journal_accept($1::jsonb) as r', [payload]);
        return rows[0]!.r;
      } catch (err) {
        // Two batches whose command keys or guards cross (inserted in batch order) can deadlock;
        // Postgres aborts one, which kept nothing, and it runs again.
        const code = (err as { code?: string }).code;
        if ((code !== '40P01' && code !== '40001') || attempt >= 3) throw err;
      }
    }
  }

  /** Unproduced commands and the age of the oldest, for metrics and health. */
  async depth(): Promise<{ unproduced: number; oldestAgeMs: number }> {
    const { rows } = await this.deps.pool.query<{ n: number; age: number | null }>(
      `select count(*)::int as n, (extract(epoch from now() - min(accepted_at)) * 1000)::float8 as age from journal_outbox`,
    );
    return { unproduced: rows[0]!.n, oldestAgeMs: rows[0]!.age ?? 0 };
  }

  /** The journal's position now: every command committed so far and not yet produced has a seq at most this. */
  async position(): Promise<number> {
    const { rows } = await this.deps.pool.query<{ seq: string | null }>('select max(seq) as seq from journal_outbox');
    return Number(rows[0]!.seq ?? 0);
  }

  /** Whether every command up to `position` has been produced (positions, not clocks: the app's and Postgres's may differ). */
  async producedUpTo(position: number): Promise<boolean> {
    const { rows } = await this.deps.pool.query<{ pending: boolean }>(
      'select exists (select 1 from journal_outbox where seq <= $1) as pending', [position],
    );
    return !rows[0]!.pending;
  }
}

/**
 * Produces journaled events to Kafka. Any number of instances may run: each round takes the
 * shards no other instance is relaying (transaction-scoped advisory locks), produces their
 * outbox rows in journal order, and deletes them in the same transaction, so a key's
 * events keep their order and a crash only re-produces what was not deleted (the
 * events' derived ids make the copy harmless). A produce that fails rolls back and is tried
 * again after a backoff: nothing is lost while Kafka is down.
 */
export class JournalRelay {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private lastPrune = 0;
  private readonly lockSpace: number;
  private failing: { since: number; error: string } | null = null;

  constructor(private readonly deps: {
    pool: pg.Pool; publisher: EventPublisher; log: Logger; namespace: string; shards: number; pollMs: number;
    batch?: number; retentionSec: number;
  }) {
    this.lockSpace = shardOf(`${deps.namespace}:journal-relay`, 2 ** 31 - 1);
  }

  /**
   * For /health: `waiting` until started (the API starts it once Kafka is connected),
   * `failing` while its rounds fail (Kafka, the registry or Postgres away; it backs off and
   * tries again), else `running`.
   */
  status(): { state: 'waiting' | 'running' | 'failing'; failingSince: string | null; lastError: string | null } {
    if (!this.running) return { state: 'waiting', failingSince: null, lastError: null };
    if (this.failing) return { state: 'failing', failingSince: new Date(this.failing.since).toISOString(), lastError: this.failing.error };
    return { state: 'running', failingSince: null, lastError: null };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Another commit is waiting: skip the poll interval. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (this.running) {
      let relayed = 0;
      try {
        relayed = await this.relayOnce();
        backoff = 0;
        this.failing = null;
        if (Date.now() - this.lastPrune > 60_000) await this.prune();
      } catch (err) {
        backoff = Math.min(5_000, Math.max(100, backoff * 2));
        this.failing ??= { since: Date.now(), error: '' };
        this.failing.error = (err as Error)?.message ?? String(err);
        this.deps.log.warn('journal relay could not produce; the journal keeps the events', { err, retryInMs: backoff });
      }
      if (relayed >= (this.deps.batch ?? 1000) && backoff === 0) continue;
      if (this.woken && backoff === 0) {
        this.woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff || this.deps.pollMs);
        this.wakeUp = () => { clearTimeout(timer); resolve(); };
      });
      this.wakeUp = null;
      this.woken = false;
    }
  }

  /** One round: returns how many commands it produced. */
  async relayOnce(): Promise<number> {
    const client = await this.deps.pool.connect();
    let done = false;
    try {
      await client.query('begin');
      const { rows: shards } = await client.query<{ s: number }>(
        'select s from generate_series(0, $1::int - 1) s where pg_try_advisory_xact_lock($2::int, s)', [this.deps.shards, this.lockSpace],
      );
      if (shards.length === 0) {
        await client.query('commit');
        done = true;
        return 0;
      }
      const { rows } = await client.query<{ seq: string; events: LedgerEvent[] }>(
        'select seq, events from journal_outbox where shard = any($1::smallint[]) order by seq limit $2',
        [shards.map((r) => r.s), this.deps.batch ?? 1000],
      );
      if (rows.length > 0) {
        await this.deps.publisher.publishInOrder(rows.flatMap((r) => r.events));
        // Produced events leave the outbox (a delete writes less than marking the row would);
        // the command's key and answer stay in `journal` for the retention.
        await client.query('delete from journal_outbox where seq = any($1::bigint[])', [rows.map((r) => r.seq)]);
      }
      await client.query('commit');
      done = true;
      return rows.length;
    } finally {
      if (!done) await client.query('rollback').catch(() => {});
      // A connection that failed mid-round is not given back to the pool.
      client.release(done ? undefined : true);
    }
  }

  /**
   * Forgets commands older than the retention (order numbers are remembered that long), but
   * never one accepted after the oldest event still waiting to be produced: through a Kafka
   * outage longer than the retention, a retry is still told its first answer.
   */
  private async prune(): Promise<void> {
    this.lastPrune = Date.now();
    await this.deps.pool.query(
      `delete from journal where ctid = any(array(
         select ctid from journal
          where accepted_at < least(now() - make_interval(secs => $1::double precision), (select coalesce(min(accepted_at), 'infinity') from journal_outbox))
          limit 10000))`,
      [this.deps.retentionSec],
    );
  }
}

/** The namespace's journal, as every process that accepts commands opens it. */
export function journalFor(rt: { pool: pg.Pool; topics: Topics; cfg: Config }): Journal {
  return new Journal({ pool: rt.pool, topics: rt.topics, shards: rt.cfg.journalShards, maxBatch: rt.cfg.journalBatch, maxInFlight: rt.cfg.journalInFlight });
}

/** A relay of the namespace's journal, woken by `journal`'s commits. Started by the caller. */
export function relayFor(rt: { pool: pg.Pool; publisher: EventPublisher; log: Logger; cfg: Config }, journal?: Journal): JournalRelay {
  const relay = new JournalRelay({
    pool: rt.pool, publisher: rt.publisher, log: rt.log, namespace: rt.cfg.namespace, shards: rt.cfg.journalShards,
    pollMs: rt.cfg.journalPollMs, retentionSec: rt.cfg.orderRetentionSec,
  });
  journal?.onAccepted(() => relay.wake());
  return relay;
}
