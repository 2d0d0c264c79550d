import pg from 'pg';

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
 * The provider's own books: one row per payout id, whatever the number of requests. These
 * are the records reconciliation compares the ledger against. They live in their own
 * Postgres schema, apart from the ledger's.
 */
export class PayoutRecords {
  readonly pool: pg.Pool;

  constructor(databaseUrl: string, readonly schema: string) {
    if (!/^[a-z][a-z0-9_]{0,50}$/.test(schema)) throw new Error(`bad provider schema name ${schema}`);
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 8, options: `-c search_path=${schema}` });
  }

  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('select pg_advisory_lock(hashtext($1))', [`psp-migrate:${this.schema}`]);
      await client.query(`create schema if not exists "${this.schema}"`);
      await client.query(`
        create table if not exists payout_records (
          seq          bigserial unique,
          payout_id    text primary key,
          user_id      text not null,
          amount       bigint not null check (amount > 0),
          currency     text not null,
          status       text not null check (status in ('succeeded', 'rejected')),
          reason       text,
          provider_ref text not null,
          requests     int not null default 1,
          created_at   timestamptz not null default now()
        )`);
      await client.query('select pg_advisory_unlock(hashtext($1))', [`psp-migrate:${this.schema}`]);
    } finally {
      client.release();
    }
  }

  /** Records a payout once; a repeated id returns the first record (and counts the request). */
  async pay(p: { payoutId: string; userId: string; amount: number; currency: string; status: PayoutStatus; reason: string | null; providerRef: string }): Promise<{ record: PayoutRecord; created: boolean }> {
    const inserted = await this.pool.query(
      `insert into payout_records(payout_id, user_id, amount, currency, status, reason, provider_ref)
       values ($1,$2,$3,$4,$5,$6,$7) on conflict (payout_id) do nothing returning *`,
      [p.payoutId, p.userId, p.amount, p.currency, p.status, p.reason, p.providerRef],
    );
    if (inserted.rows[0]) return { record: toRecord(inserted.rows[0]), created: true };
    const { rows } = await this.pool.query('update payout_records set requests = requests + 1 where payout_id = $1 returning *', [p.payoutId]);
    return { record: toRecord(rows[0]), created: false };
  }

  async get(payoutId: string): Promise<PayoutRecord | null> {
    const { rows } = await this.pool.query('select * from payout_records where payout_id = $1', [payoutId]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Records in the order they were made, after a position: for reconciliation to page through. */
  async list(afterSeq: number, limit: number): Promise<{ records: (PayoutRecord & { seq: number })[] }> {
    const { rows } = await this.pool.query('select * from payout_records where seq > $1 order by seq limit $2', [afterSeq, limit]);
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
