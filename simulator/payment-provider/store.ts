import type pg from 'pg';
import { pgPool } from '../../infra/db.ts';

export type PayoutStatus = 'succeeded' | 'rejected';

export interface PayoutRecord {
  payoutId: string;
  userId: string;
  amount: number;
  currency: string;
  status: PayoutStatus;
  reason: string | null;
  providerRef: string;
  /** How many requests for this payout id arrived (retries are expected; payments are not repeated). */
  requests: number;
  createdAt: string;
}

/**
 * The provider's own books: one row per payment it made (or refused). These are the
 * records reconciliation compares the ledger against. They live in their own Postgres
 * schema, apart from the ledger's.
 *
 * Like a real provider, its payments are keyed by its own reference, and the caller's payout
 * id is a field it deduplicates on. Deduplication is a rule of the provider, not a property
 * of its table, so a provider bug (or a test) can record two payments for one payout id, and
 * reconciliation must catch that.
 */
export class PayoutRecords {
  readonly pool: pg.Pool;

  constructor(databaseUrl: string, readonly schema: string) {
    if (!/^[a-z][a-z0-9_]{0,50}$/.test(schema)) throw new Error(`bad provider schema name ${schema}`);
    this.pool = pgPool(databaseUrl, schema, 8);
  }

  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('select pg_advisory_lock(hashtext($1))', [`psp-migrate:${this.schema}`]);
      await client.query(`create schema if not exists "${this.schema}"`);
      await client.query(`
        create table if not exists payments (
          seq          bigserial primary key,
          provider_ref text not null unique,
          payout_id    text not null,
          user_id      text not null,
          amount       bigint not null check (amount > 0),
          currency     text not null,
          status       text not null check (status in ('succeeded', 'rejected')),
          reason       text,
          requests     int not null default 1,
          created_at   timestamptz not null default now()
        )`);
      await client.query('create index if not exists payments_payout_idx on payments(payout_id, seq)');
      await client.query('create index if not exists payments_created_idx on payments(created_at, seq)');
      await client.query('select pg_advisory_unlock(hashtext($1))', [`psp-migrate:${this.schema}`]);
    } finally {
      client.release();
    }
  }

  /** Records a payout once; a repeated payout id returns the first record (and counts the request). */
  async pay(p: { payoutId: string; userId: string; amount: number; currency: string; status: PayoutStatus; reason: string | null; providerRef: string }): Promise<{ record: PayoutRecord; created: boolean }> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query('select pg_advisory_xact_lock(hashtext($1))', [`psp-payout:${p.payoutId}`]);
      const seen = await client.query('update payments set requests = requests + 1 where seq = (select min(seq) from payments where payout_id = $1) returning *', [p.payoutId]);
      if (seen.rows[0]) {
        await client.query('commit');
        return { record: toRecord(seen.rows[0]), created: false };
      }
      const { rows } = await client.query(
        `insert into payments(payout_id, user_id, amount, currency, status, reason, provider_ref) values ($1,$2,$3,$4,$5,$6,$7) returning *`,
        [p.payoutId, p.userId, p.amount, p.currency, p.status, p.reason, p.providerRef],
      );
      await client.query('commit');
      return { record: toRecord(rows[0]), created: true };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async get(payoutId: string): Promise<PayoutRecord | null> {
    const { rows } = await this.pool.query('select * from payments where payout_id = $1 order by seq limit 1', [payoutId]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * The statement: records in the order they were made, after a position, optionally only
   * those made in [from, to). Reconciliation pages through it.
   */
  async list(afterSeq: number, limit: number, range: { from?: Date; to?: Date } = {}): Promise<{ records: (PayoutRecord & { seq: number })[] }> {
    const { rows } = await this.pool.query(
      `select * from payments where seq > $1 and ($3::timestamptz is null or created_at >= $3) and ($4::timestamptz is null or created_at < $4)
        order by seq limit $2`,
      [afterSeq, limit, range.from ?? null, range.to ?? null],
    );
    return { records: rows.map((r) => ({ ...toRecord(r), seq: Number(r.seq) })) };
  }

  /** Every record for the given payout ids (a payout id normally has one). */
  async byPayoutIds(payoutIds: string[]): Promise<{ records: (PayoutRecord & { seq: number })[] }> {
    const { rows } = await this.pool.query('select * from payments where payout_id = any($1) order by seq', [payoutIds]);
    return { records: rows.map((r) => ({ ...toRecord(r), seq: Number(r.seq) })) };
  }

  async drop(): Promise<void> {
    await this.pool.query(`drop schema if exists "${this.schema}" cascade`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function toRecord(r: Record<string, any>): PayoutRecord {
  return {
    payoutId: r.payout_id, userId: r.user_id, amount: Number(r.amount), currency: r.currency, status: r.status,
    reason: r.reason, providerRef: r.provider_ref, requests: r.requests, createdAt: r.created_at.toISOString(),
  };
}
