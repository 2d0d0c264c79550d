import type pg from 'pg';
import type { TokenRecord } from '../domain/ledger.ts';
import type { Difference } from './differences.ts';
import {
  BOUNDS, boundsParams, POSTING_ROW, TOKEN_ROW, TOKEN_STATE, WITHDRAWAL_ROW, WITHDRAWAL_STATE, drift, type FoldedEvent, type ProjectionCheck,
} from './projection-check.ts';
import { MOD, rowHash, sqlRowHash } from './row-hash.ts';
import { BUCKETS, Digest, idBucket } from './digest.ts';
import type { MergedFold } from './log-fold.ts';

/**
 * The projection comparison of a whole-log audit. Fetching the projection's rows event by
 * event would make Postgres the bottleneck of the audit, so instead each table is digested
 * whole, in 256 buckets by id prefix (accounts: by their row hash), by one scan
 * that runs in Postgres while the audit reads the log, and the fold digests the same rows as
 * it goes (log-fold.ts). Only a bucket whose digests differ is compared row by row; for events and their
 * postings, which the fold does not keep, that means reading the log a second time (audits
 * that find nothing never do).
 *
 * Rows the projection has for events after the audited range (a live system) also make a
 * bucket differ; the row-by-row comparison recognises and skips them.
 */
const accountBucket = (account: string) => rowHash(account) % BUCKETS;
const bucketSql = (col: string) => `left(${col}::text, 2)`;
/** The uuid range of a bucket, for index range scans. */
const uuidRange = (b: number) => {
  const p = b.toString(16).padStart(2, '0');
  return [`${p}000000-0000-0000-0000-000000000000`, `${p}ffffff-ffff-ffff-ffff-ffffffffffff`];
};

type Table = 'events' | 'postings' | 'tokens' | 'withdrawals' | 'balances';
const DIGEST_SQL: Record<Table, string> = {
  events: `select ${bucketSql('e.event_id')} as b, count(*)::int as n, (coalesce(sum(${sqlRowHash('e.event_id::text')}), 0) % ${MOD})::text as s from ledger_events e group by 1`,
  postings: `select ${bucketSql('p.event_id')} as b, count(*)::int as n, (coalesce(sum(${sqlRowHash(POSTING_ROW)}), 0) % ${MOD})::text as s from postings p group by 1`,
  tokens: `select ${bucketSql('t.token_id')} as b, count(*)::int as n, (coalesce(sum(${sqlRowHash(`${TOKEN_ROW} || '#' || ${TOKEN_STATE}`)}), 0) % ${MOD})::text as s from tokens t group by 1`,
  withdrawals: `select ${bucketSql('w.withdrawal_id')} as b, count(*)::int as n, (coalesce(sum(${sqlRowHash(`${WITHDRAWAL_ROW} || '#' || ${WITHDRAWAL_STATE}`)}), 0) % ${MOD})::text as s from withdrawals w group by 1`,
  balances: `select to_hex(${sqlRowHash('account')} % ${BUCKETS}) as b, count(*)::int as n, (coalesce(sum(${sqlRowHash(`account || '|' || balance`)}), 0) % ${MOD})::text as s from account_balances group by 1`,
};

interface Snapshot {
  digests: Record<Table, { b: string; n: number; s: string }[]>;
  totals: { currency: string; sum: number }[];
  /** Projected events after the range, and their postings (a live system's newer rows). */
  later: { id: string; row: string | null; currency: string | null; amount: number | null }[];
}

export class WholeLogCheck {
  private readonly snapshot: Promise<Snapshot>;

  /**
   * Starts digesting the projection at once, so Postgres works while the log is read. One
   * snapshot serves the digests and the rows after the range, so rows projected during the
   * audit are either in both or in neither.
   */
  constructor(private readonly pool: pg.Pool, private readonly check: ProjectionCheck) {
    this.snapshot = this.take();
    this.snapshot.catch(() => {}); // surfaces when finish() awaits it
  }

  private async take(): Promise<Snapshot> {
    const client = await this.pool.connect();
    try {
      await client.query('begin isolation level repeatable read read only');
      const digests: Partial<Snapshot['digests']> = {};
      for (const t of Object.keys(DIGEST_SQL) as Table[]) digests[t] = (await client.query(DIGEST_SQL[t])).rows;
      const totals = (await client.query('select currency, sum(amount)::bigint as sum from postings group by currency')).rows;
      const later = (await client.query(
        `select e.event_id::text as id, ${POSTING_ROW} as row, p.currency, p.amount
           from ${BOUNDS} join ledger_events e on e.topic = b.topic and e.partition = b.partition and e."offset" >= b.e
           left join postings p on p.event_id = e.event_id`, boundsParams(this.check.ranges),
      )).rows;
      await client.query('commit');
      return { digests: digests as Snapshot['digests'], totals, later };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Compares with the projection. `reread` reads the log again and returns the folded events
   * whose ids fall in the given buckets.
   */
  async finish(
    fold: MergedFold, allTokens: () => Promise<TokenRecord[]>, reread: (buckets: Set<number>) => Promise<FoldedEvent[]>,
  ): Promise<Difference[]> {
    const { digests: projected, totals, later } = await this.snapshot;
    const out: Difference[] = [];
    // Events projected after the range are expected in the projection's digests: add them to ours.
    const events = new Digest(fold.digests.events);
    const postings = new Digest(fold.digests.postings);
    const laterIds = new Set<string>();
    for (const r of later) {
      if (!laterIds.has(r.id)) events.add(idBucket(r.id), r.id);
      laterIds.add(r.id);
      if (r.row) postings.add(idBucket(r.id), r.row);
    }

    const eventBuckets = new Set([...events.differing(projected.events), ...postings.differing(projected.postings)]);
    if (eventBuckets.size > 0) {
      out.push(...(await this.check.eventDetail(await reread(eventBuckets))));
      out.push(...(await this.extraEvents(eventBuckets, fold.applied)));
    }

    const tokenBuckets = fold.digests.tokens.differing(projected.tokens);
    if (tokenBuckets.size > 0) {
      const all = await allTokens();
      const mine = all.filter((t) => tokenBuckets.has(idBucket(t.tokenId)));
      out.push(...(await this.check.tokenDetail(mine)), ...(await this.check.states(mine, [])));
      out.push(...(await this.extraRecords('token', 'tokens', 'token_id', tokenBuckets, new Set(all.map((t) => t.tokenId)))));
    }

    const withdrawalBuckets = fold.digests.withdrawals.differing(projected.withdrawals);
    if (withdrawalBuckets.size > 0) {
      const mine = [...fold.withdrawals.values()].filter((w) => withdrawalBuckets.has(idBucket(w.withdrawalId)));
      out.push(...(await this.check.withdrawalDetail(mine)), ...(await this.check.states([], mine)));
      out.push(...(await this.extraRecords('withdrawal', 'withdrawals', 'withdrawal_id', withdrawalBuckets, fold.withdrawals)));
    }

    const balances = new Digest();
    for (const [account, b] of fold.balances) balances.add(accountBucket(account), `${account}|${b.balance}`);
    const balanceBuckets = balances.differing(projected.balances);
    if (balanceBuckets.size > 0) out.push(...(await this.check.balances(fold.balances, (a) => balanceBuckets.has(accountBucket(a)))));

    out.push(...imbalances(totals, later));
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
function imbalances(totals: Snapshot['totals'], later: Snapshot['later']): Difference[] {
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
