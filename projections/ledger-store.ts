import type pg from 'pg';
import { assertBalanced, effectsOf, type Anomaly, type Posting, type TokenRecord } from '../domain/ledger.ts';
import type { LedgerEvent } from '../domain/events.ts';
import type { Currency } from '../domain/money.ts';

/** A consumed message: its offset, and the event it carried (null when it was dead-lettered). */
export interface ConsumedItem {
  offset: number;
  event: LedgerEvent | null;
}

/** The partition's stored position is behind the batch: messages in between were never applied. */
export class OffsetGap extends Error {
  constructor(readonly expected: number, readonly got: number) {
    super(`offset gap: projection expects ${expected}, batch starts at ${got}`);
  }
}

export interface ApplyResult {
  applied: number;
  duplicates: number;
  skipped: number;
  nextOffset: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Applies one partition's consumed messages to the projection, in the caller's transaction,
 * together with the partition's next offset. The offset row is locked first, so two
 * consumers that both believe they own a partition (a rebalance zombie) serialise, and the
 * second one skips what the first applied.
 */
export async function applyBatch(
  client: pg.PoolClient, consumer: string, topic: string, partition: number, items: readonly ConsumedItem[],
): Promise<ApplyResult> {
  if (items.length === 0) throw new Error('applyBatch needs at least one item');
  await client.query(
    'insert into consumer_offsets(consumer, topic, partition, next_offset) values ($1,$2,$3,0) on conflict do nothing',
    [consumer, topic, partition],
  );
  const { rows } = await client.query<{ next_offset: number }>(
    'select next_offset from consumer_offsets where consumer=$1 and topic=$2 and partition=$3 for update',
    [consumer, topic, partition],
  );
  const stored = rows[0]!.next_offset;
  const fresh = items.filter((i) => i.offset >= stored);
  const last = items[items.length - 1]!.offset;
  if (fresh.length === 0) return { applied: 0, duplicates: 0, skipped: items.length, nextOffset: stored };
  if (fresh[0]!.offset > stored) throw new OffsetGap(stored, fresh[0]!.offset);

  await client.query(
    'update consumer_offsets set next_offset=$4, updated_at=now() where consumer=$1 and topic=$2 and partition=$3',
    [consumer, topic, partition, last + 1],
  );
  const events = fresh.filter((i): i is ConsumedItem & { event: LedgerEvent } => i.event !== null);
  let applied = 0;
  if (events.length > 0) {
    const inserted = await client.query<{ event_id: string }>(
      `insert into ledger_events(event_id, event_type, activity_id, topic, partition, "offset", occurred_at)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::timestamptz[])
       on conflict (event_id) do nothing returning event_id`,
      [
        events.map((e) => e.event.data.eventId), events.map((e) => e.event.type), events.map((e) => e.event.data.activityId),
        events.map(() => topic), events.map(() => partition), events.map((e) => e.offset), events.map((e) => iso(e.event.data.occurredAt)),
      ],
    );
    const isNew = new Set(inserted.rows.map((r) => r.event_id));
    const toApply: LedgerEvent[] = [];
    for (const { event } of events) {
      if (isNew.delete(event.data.eventId)) toApply.push(event); // first occurrence only
    }
    applied = toApply.length;
    if (toApply.length > 0) await writeEffects(client, toApply);
  }

  return { applied, duplicates: events.length - applied, skipped: items.length - fresh.length, nextOffset: last + 1 };
}

/** Folds new events with the domain rules and writes what they changed. */
async function writeEffects(client: pg.PoolClient, events: readonly LedgerEvent[]): Promise<void> {
  // Token state the fold needs, from the database, overlaid by what this batch changes.
  const referenced = [...new Set(events.filter((e) => e.type === 'TokenCredited').map((e) => e.data.tokenId))];
  const known = new Map<string, TokenRecord>();
  if (referenced.length > 0) {
    const res = await client.query(
      `select token_id, user_id, activity_id, scene_id, order_no, amount, currency, status,
              (extract(epoch from issued_at) * 1000)::bigint as issued_ms,
              (extract(epoch from credited_at) * 1000)::bigint as credited_ms
         from tokens where token_id = any($1::uuid[])`,
      [referenced],
    );
    for (const r of res.rows) {
      known.set(r.token_id, {
        tokenId: r.token_id, userId: r.user_id, activityId: r.activity_id, sceneId: r.scene_id, orderNo: r.order_no,
        amount: r.amount, currency: r.currency, status: r.status, issuedAt: r.issued_ms, creditedAt: r.credited_ms,
      });
    }
  }
  const view = { token: (id: string) => known.get(id) };

  const postings: (Posting & { eventId: string; leg: number; at: number })[] = [];
  const balances = new Map<string, { currency: Currency; delta: number }>();
  const anomalies: (Anomaly & { eventId: string })[] = [];
  const touched = new Set<string>();
  for (const event of events) {
    const fx = effectsOf(event, view);
    assertBalanced(fx.postings);
    for (const [leg, p] of fx.postings.entries()) {
      postings.push({ ...p, eventId: event.data.eventId, leg, at: event.data.occurredAt });
      const b = balances.get(p.account) ?? { currency: p.currency, delta: 0 };
      b.delta += p.amount;
      balances.set(p.account, b);
    }
    for (const t of fx.tokens) {
      known.set(t.tokenId, t);
      touched.add(t.tokenId);
    }
    anomalies.push(...fx.anomalies);
  }
  const tokens = [...touched].map((id) => known.get(id)!);

  if (postings.length > 0) {
    await client.query(
      `insert into postings(event_id, leg, account, currency, amount, created_at)
       select * from unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])`,
      [postings.map((p) => p.eventId), postings.map((p) => p.leg), postings.map((p) => p.account), postings.map((p) => p.currency), postings.map((p) => p.amount), postings.map((p) => iso(p.at))],
    );
  }
  if (tokens.length > 0) {
    await client.query(
      `insert into tokens(token_id, user_id, activity_id, scene_id, order_no, amount, currency, status, issued_at, credited_at)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
       on conflict (token_id) do update set status = excluded.status, credited_at = excluded.credited_at`,
      [
        tokens.map((t) => t.tokenId), tokens.map((t) => t.userId), tokens.map((t) => t.activityId), tokens.map((t) => t.sceneId),
        tokens.map((t) => t.orderNo), tokens.map((t) => t.amount), tokens.map((t) => t.currency), tokens.map((t) => t.status),
        tokens.map((t) => iso(t.issuedAt)), tokens.map((t) => (t.creditedAt === null ? null : iso(t.creditedAt))),
      ],
    );
  }
  if (anomalies.length > 0) {
    await client.query(
      `insert into ledger_anomalies(event_id, kind, detail)
       select * from unnest($1::uuid[], $2::text[], $3::jsonb[]) on conflict do nothing`,
      [anomalies.map((a) => a.eventId), anomalies.map((a) => a.kind), anomalies.map((a) => JSON.stringify(a))],
    );
  }
  if (balances.size > 0) {
    // Last statement before commit, and sorted: shared rows (an activity's budget, which
    // every partition touches) are locked briefly and always in one order, so partitions
    // projected concurrently neither wait long on each other nor deadlock.
    const sorted = [...balances].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    await client.query(
      `insert into account_balances(account, currency, balance)
       select * from unnest($1::text[], $2::text[], $3::bigint[])
       on conflict (account) do update set balance = account_balances.balance + excluded.balance, updated_at = now()`,
      [sorted.map(([a]) => a), sorted.map(([, b]) => b.currency), sorted.map(([, b]) => b.delta)],
    );
  }
}
