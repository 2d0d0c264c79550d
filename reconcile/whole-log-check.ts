import type pg from 'pg';
import type { TokenRecord } from '../domain/ledger.ts';
import type { Currency } from '../domain/money.ts';
import type { Difference } from './differences.ts';
import { BOUNDS, boundsParams, drift, type FoldedEvent, type ProjectionCheck } from './projection-check.ts';
import {
  BALANCE_HASH, EVENT_HASH, MOD, POSTING_HASH, TOKEN_HASH, TOKEN_STATE_HASH, WITHDRAWAL_HASH, WITHDRAWAL_STATE_HASH,
  balanceHash, eventHash, postingHash, textHash, textHashSql,
} from './row-hash.ts';
import { BUCKETS, Digest, idBucket } from './digest.ts';
import type { MergedFold } from './log-fold.ts';

/**
 * The projection comparison of a whole-log audit. Fetching the projection's rows event by
 * event would make Postgres the bottleneck of the audit, so instead each table is digested
 * whole (a count and a sum of row hashes, row-hash.ts) by one scan that runs in Postgres
 * while the audit reads the log, and the fold digests the same rows as it goes
 * (log-fold.ts). Only a table whose digest differs is digested again in 256 buckets by id
 * prefix (accounts: by a hash of the account), and only a bucket that differs is compared
 * row by row; for events and their postings, which the fold does not keep, that means
 * reading the log a second time. An audit that finds nothing does neither.
 *
 * Rows the projection has for events after the audited range (a live system) also make a
 * digest differ; the row-by-row comparison recognises and skips them.
 */
const accountBucket = (account: string) => textHash(account) % BUCKETS;
/** The uuid range of a bucket, for index range scans. */
const uuidRange = (b: number) => {
  const p = b.toString(16).padStart(2, '0');
  return [`${p}000000-0000-0000-0000-000000000000`, `${p}ffffff-ffff-ffff-ffff-ffffffffffff`];
};

type Table = 'events' | 'postings' | 'tokens' | 'withdrawals' | 'balances';
/** Per table: what it is read from, the hash of a row, and the bucket of a row. */
const TABLES: Record<Table, { from: string; hash: string; bucket: string }> = {
  events: { from: 'ledger_events e', hash: EVENT_HASH, bucket: 'get_byte(uuid_send(e.event_id), 0)' },
  postings: { from: 'postings p', hash: POSTING_HASH, bucket: 'get_byte(uuid_send(p.event_id), 0)' },
  // A token's row and its status, as one row: the fold compares both at the log's end.
  tokens: { from: 'tokens t', hash: `(${TOKEN_HASH} + ${TOKEN_STATE_HASH})`, bucket: 'get_byte(uuid_send(t.token_id), 0)' },
  withdrawals: { from: 'withdrawals w', hash: `(${WITHDRAWAL_HASH} + ${WITHDRAWAL_STATE_HASH})`, bucket: 'get_byte(uuid_send(w.withdrawal_id), 0)' },
  balances: { from: 'account_balances', hash: BALANCE_HASH, bucket: `(${textHashSql('account')} % ${BUCKETS})` },
};
const digestSql = (t: Table, byBucket: boolean) =>
  `select ${byBucket ? `${TABLES[t].bucket}::int` : '0'} as b, count(*)::int as n, (coalesce(sum(${TABLES[t].hash}), 0) % ${MOD})::text as s from ${TABLES[t].from}${byBucket ? ' group by 1' : ''}`;

/** Digest rows as Postgres returns them: bucket (0 for a whole table), count, hash sum. */
type DigestRows = { b: number; n: number; s: string }[];

interface Snapshot {
  /** The transaction the digests were taken in: a table's buckets are read in it too, if need be. */
  client: pg.PoolClient;
  totals: Record<Table, DigestRows>;
  /** The postings' sum per currency (I1). */
  sums: { currency: string; sum: number }[];
  /** Projected events after the range, and their postings (a live system's newer rows). */
  later: { id: string; leg: number | null; account: string | null; currency: Currency | null; amount: number | null }[];
}

export class WholeLogCheck {
  private readonly snapshot: Promise<Snapshot>;
  private closed = false;

  /**
   * Starts digesting the projection at once, so Postgres works while the log is read. One
   * snapshot serves the digests and the rows after the range, so rows projected during the
   * audit are either in both or in neither. It stays open until finish() or close().
   */
  constructor(private readonly pool: pg.Pool, private readonly check: ProjectionCheck) {
    this.snapshot = this.take();
    this.snapshot.catch(() => {}); // surfaces when finish() awaits it
  }

  private async take(): Promise<Snapshot> {
    const client = await this.pool.connect();
    try {
      await client.query('begin isolation level repeatable read read only');
      const totals = {} as Snapshot['totals'];
      for (const t of ['events', 'tokens', 'withdrawals', 'balances'] as const) totals[t] = (await client.query<DigestRows[number]>(digestSql(t, false))).rows;
      // The postings' scan also sums their amounts per currency (I1), so it is grouped by currency.
      const postings = (await client.query<{ currency: string; n: number; s: string; sum: number }>(
        `select currency, count(*)::int as n, (sum(${POSTING_HASH}) % ${MOD})::text as s, sum(amount)::bigint as sum from postings p group by currency`,
      )).rows;
      totals.postings = [{ b: 0, n: postings.reduce((n, r) => n + r.n, 0), s: String(postings.reduce((s, r) => (s + Number(r.s)) % MOD, 0)) }];
      const later = (await client.query(
        `select e.event_id::text as id, p.leg, p.account, p.currency, p.amount
           from ${BOUNDS} join ledger_events e on e.topic = b.topic and e.partition = b.partition and e."offset" >= b.e
           left join postings p on p.event_id = e.event_id`, boundsParams(this.check.ranges),
      )).rows;
      return { client, totals, sums: postings.map((r) => ({ currency: r.currency, sum: r.sum })), later };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      client.release();
      throw err;
    }
  }

  /** Ends the snapshot's transaction (finish() does it too). */
  async close(): Promise<void> {
    const snap = await this.snapshot.catch(() => null);
    if (!snap || this.closed) return;
    this.closed = true;
    await snap.client.query('commit').catch(() => {});
    snap.client.release();
  }

  /** Buckets of a table whose digests differ from Postgres's, read in the snapshot only when the whole table's digest differs. */
  private async differing(table: Table, ours: Digest): Promise<Set<number>> {
    return this.differingBy(table, ours.total(), () => ours);
  }

  /** As differing(), for a digest whose buckets are only worth making if its total differs. */
  private async differingBy(table: Table, total: { n: number; sum: number }, buckets: () => Digest): Promise<Set<number>> {
    const snap = await this.snapshot;
    const theirs = snap.totals[table][0] ?? { n: 0, s: '0' };
    if (theirs.n === total.n && Number(theirs.s) === total.sum) return new Set();
    return buckets().differing((await snap.client.query<DigestRows[number]>(digestSql(table, true))).rows);
  }

  /**
   * Compares with the projection. `reread` reads the log again and returns the folded events
   * whose ids fall in the given buckets.
   */
  async finish(
    fold: MergedFold, allTokens: () => Promise<TokenRecord[]>, reread: (buckets: Set<number>) => Promise<FoldedEvent[]>,
  ): Promise<Difference[]> {
    try {
      return await this.compare(fold, allTokens, reread);
    } finally {
      await this.close();
    }
  }

  private async compare(
    fold: MergedFold, allTokens: () => Promise<TokenRecord[]>, reread: (buckets: Set<number>) => Promise<FoldedEvent[]>,
  ): Promise<Difference[]> {
    const { sums, later } = await this.snapshot;
    const out: Difference[] = [];
    // Events projected after the range are expected in the projection's digests: add them to ours.
    const events = new Digest(fold.digests.events);
    const postings = new Digest(fold.digests.postings);
    const laterIds = new Set<string>();
    for (const r of later) {
      if (!laterIds.has(r.id)) events.add(idBucket(r.id), eventHash(r.id));
      laterIds.add(r.id);
      if (r.leg !== null) postings.add(idBucket(r.id), postingHash(r.id, r.leg, { account: r.account!, currency: r.currency!, amount: r.amount! }));
    }

    const eventBuckets = new Set([...(await this.differing('events', events)), ...(await this.differing('postings', postings))]);
    if (eventBuckets.size > 0) {
      out.push(...(await this.check.eventDetail(await reread(eventBuckets))));
      out.push(...(await this.extraEvents(eventBuckets, fold.applied)));
    }

    const tokenBuckets = await this.differing('tokens', fold.digests.tokens);
    if (tokenBuckets.size > 0) {
      const all = await allTokens();
      const mine = all.filter((t) => tokenBuckets.has(idBucket(t.tokenId)));
      out.push(...(await this.check.tokenDetail(mine)), ...(await this.check.states(mine, [])));
      out.push(...(await this.extraRecords('token', 'tokens', 'token_id', tokenBuckets, new Set(all.map((t) => t.tokenId)))));
    }

    const withdrawalBuckets = await this.differing('withdrawals', fold.digests.withdrawals);
    if (withdrawalBuckets.size > 0) {
      const mine = [...fold.withdrawals.values()].filter((w) => withdrawalBuckets.has(idBucket(w.withdrawalId)));
      out.push(...(await this.check.withdrawalDetail(mine)), ...(await this.check.states([], mine)));
      out.push(...(await this.extraRecords('withdrawal', 'withdrawals', 'withdrawal_id', withdrawalBuckets, fold.withdrawals)));
    }

    // An account's bucket is a second hash of it: made only if the balances' total differs.
    const whole = new Digest();
    for (const [account, b] of fold.balances) whole.add(0, balanceHash(account, b.currency, b.balance));
    const balanceBuckets = await this.differingBy('balances', whole.total(), () => {
      const balances = new Digest();
      for (const [account, b] of fold.balances) balances.add(accountBucket(account), balanceHash(account, b.currency, b.balance));
      return balances;
    });
    if (balanceBuckets.size > 0) out.push(...(await this.check.balances(fold.balances, (a) => balanceBuckets.has(accountBucket(a)))));

    out.push(...imbalances(sums, later));
    return out;
  }

  /** Projected events in these buckets that the log does not have (and that are not after the range). */
  private async extraEvents(buckets: Set<number>, known: { has(id: string): boolean }): Promise<Difference[]> {
    const out: Difference[] = [];
    for (const b of buckets) {
      const { rows } = await this.pool.query<{ event_id: string; topic: string; partition: number; offset: number }>(
        'select event_id::text, topic, partition, "offset" from ledger_events where event_id between $1 and $2', uuidRange(b),
      );
      for (const r of rows) {
        if (known.has(r.event_id) || this.check.afterEnd(r)) continue;
        out.push(drift(`event ${r.event_id} is in the projection but not in the log`, { events: [r.event_id], expected: 'absent', actual: 'present' }));
      }
    }
    return out;
  }

  private async extraRecords(what: string, table: string, idCol: string, buckets: Set<number>, known: { has(id: string): boolean }): Promise<Difference[]> {
    const out: Difference[] = [];
    for (const b of buckets) {
      const { rows } = await this.pool.query<{ id: string }>(`select ${idCol}::text as id from ${table} where ${idCol} between $1 and $2`, uuidRange(b));
      const unknown = rows.map((r) => r.id).filter((id) => !known.has(id));
      // Created by an event after the range: the next audit's business.
      const created = await this.check.positions(unknown);
      for (const id of unknown) {
        if (this.check.afterEnd(created.get(id))) continue;
        out.push(drift(`${what} ${id} is in the projection but not in the log`, { events: [id], expected: 'absent', actual: 'present' }));
      }
    }
    return out;
  }
}

/** I1 over the whole projection: postings sum to zero per currency (less those of events after the range). */
function imbalances(totals: Snapshot['sums'], later: Snapshot['later']): Difference[] {
  const after = new Map<string, number>();
  for (const r of later) if (r.currency) after.set(r.currency, (after.get(r.currency) ?? 0) + r.amount!);
  return totals
    .map((r) => ({ currency: r.currency, sum: r.sum - (after.get(r.currency) ?? 0) }))
    .filter((r) => r.sum !== 0)
    .map((r) => ({
      kind: 'ledger_imbalance' as const, currency: r.currency, expected: 0, actual: r.sum, events: [], repair: null,
      message: `the projection's postings sum to ${r.sum} ${r.currency}, not zero`,
    }));
}
