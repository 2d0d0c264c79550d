import type pg from 'pg';
import { assertBalanced, effectsOf, stateReadBy, type Anomaly, type LedgerView, type Posting, type TokenRecord } from '../domain/ledger.ts';
import type { WithdrawalRecord } from '../domain/withdrawals.ts';
import type { PacketClaimRecord, PacketCreditRecord, PacketRecord } from '../domain/packets.ts';
import type { DrawWinRecord, GoodsGrantRecord } from '../domain/campaigns.ts';
import { couponHoldOf, packStatusOf, templateCountsDelta, type PackRecord } from '../domain/coupons.ts';
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
    const toApply: Positioned[] = [];
    for (const { event, offset } of events) {
      if (isNew.delete(event.data.eventId)) toApply.push({ event, offset }); // first occurrence only
    }
    applied = toApply.length;
    if (toApply.length > 0) await writeEffects(client, toApply);
  }

  return { applied, duplicates: events.length - applied, skipped: items.length - fresh.length, nextOffset: last + 1 };
}

type Positioned = { event: LedgerEvent; offset: number };

const ms = (col: string) => `(extract(epoch from ${col}) * 1000)::bigint`;
/** Token rows as the fold's records: select ${TOKEN_COLUMNS} from tokens t. */
export const TOKEN_COLUMNS = `t.token_id, t.user_id, t.activity_id, t.scene_id, t.order_no, t.amount, t.currency, t.status,
  ${ms('t.issued_at')} as issued_ms, ${ms('t.credited_at')} as credited_ms, t.budget_slice_end`;
export const WITHDRAWAL_COLUMNS = `w.withdrawal_id, w.user_id, w.amount, w.currency, w.status, w.reason, w.provider_ref, w.resolved_event_id,
  ${ms('w.requested_at')} as requested_ms, ${ms('w.resolved_at')} as resolved_ms`;

export const PACKET_COLUMNS = `p.packet_id, p.sender_id, p.amount, p.currency, p.share_count, p.shares, p.greeting, p.status,
  p.claimed_count, p.claimed_amount, p.refunded_amount, ${ms('p.created_at')} as created_ms, ${ms('p.expires_at')} as expires_ms, ${ms('p.closed_at')} as closed_ms`;
export const CLAIM_COLUMNS = `c.packet_id, c.seq, c.user_id, c.amount, c.currency, ${ms('c.claimed_at')} as claimed_ms`;

export function packetFromRow(r: Record<string, any>): PacketRecord {
  return {
    packetId: r.packet_id, senderId: r.sender_id, amount: r.amount, currency: r.currency, count: r.share_count,
    shares: (r.shares as (string | number)[]).map(Number), greeting: r.greeting, createdAt: r.created_ms, expiresAt: r.expires_ms,
    status: r.status, claimedCount: r.claimed_count, claimedAmount: r.claimed_amount, refundedAmount: r.refunded_amount, closedAt: r.closed_ms,
  };
}

export function claimFromRow(r: Record<string, any>): PacketClaimRecord {
  return { packetId: r.packet_id, seq: r.seq, userId: r.user_id, amount: r.amount, currency: r.currency, claimedAt: r.claimed_ms };
}

export function tokenFromRow(r: Record<string, any>): TokenRecord {
  return {
    tokenId: r.token_id, userId: r.user_id, activityId: r.activity_id, sceneId: r.scene_id, orderNo: r.order_no,
    amount: r.amount, currency: r.currency, status: r.status, issuedAt: r.issued_ms, creditedAt: r.credited_ms, budgetSliceEnd: r.budget_slice_end,
  };
}

export function withdrawalFromRow(r: Record<string, any>): WithdrawalRecord {
  return {
    withdrawalId: r.withdrawal_id, userId: r.user_id, amount: r.amount, currency: r.currency, status: r.status,
    requestedAt: r.requested_ms, resolvedAt: r.resolved_ms, resolvedEventId: r.resolved_event_id, reason: r.reason, providerRef: r.provider_ref,
  };
}

/** The state the fold reads, loaded from the projection for just the rows a batch touches. */
async function loadView(client: pg.PoolClient, events: readonly LedgerEvent[]) {
  const tokenIds = new Set<string>();
  const withdrawalIds = new Set<string>();
  const accounts = new Set<string>();
  const packetIds = new Set<string>();
  const claimKeys: { packetId: string; seq: number }[] = [];
  const packIds = new Set<string>();
  for (const e of events) {
    const reads = stateReadBy(e);
    if (reads.token) tokenIds.add(reads.token);
    if (reads.withdrawal) withdrawalIds.add(reads.withdrawal);
    if (reads.balance) accounts.add(reads.balance);
    if (reads.packet) packetIds.add(reads.packet);
    if (reads.packetClaim) claimKeys.push(reads.packetClaim);
    if (reads.pack) packIds.add(reads.pack);
  }
  const tokens = new Map<string, TokenRecord>();
  const withdrawals = new Map<string, WithdrawalRecord>();
  const stored = new Map<string, number>();
  const packets = new Map<string, PacketRecord>();
  const claims = new Map<string, PacketClaimRecord>();
  const packs = new Map<string, PackRecord>();
  const [tk, wd, bal, pk, cl, gp] = await Promise.all([
    tokenIds.size === 0 ? null : client.query(`select ${TOKEN_COLUMNS} from tokens t where t.token_id = any($1::uuid[])`, [[...tokenIds]]),
    withdrawalIds.size === 0 ? null : client.query(`select ${WITHDRAWAL_COLUMNS} from withdrawals w where w.withdrawal_id = any($1::uuid[])`, [[...withdrawalIds]]),
    accounts.size === 0 ? null : client.query<{ account: string; balance: number }>(
      'select account, balance from account_balances where account = any($1)', [[...accounts]]),
    packetIds.size === 0 ? null : client.query(`select ${PACKET_COLUMNS} from packets p where p.packet_id = any($1::uuid[])`, [[...packetIds]]),
    claimKeys.length === 0 ? null : client.query(
      `select ${CLAIM_COLUMNS} from unnest($1::uuid[], $2::int[]) as q(packet_id, seq) join packet_claims c using (packet_id, seq)`,
      [claimKeys.map((k) => k.packetId), claimKeys.map((k) => k.seq)]),
    packIds.size === 0 ? null : client.query<{ record: PackRecord }>('select record from gift_pack_grants where grant_id = any($1::uuid[])', [[...packIds]]),
  ]);
  for (const r of tk?.rows ?? []) tokens.set(r.token_id, tokenFromRow(r));
  for (const r of wd?.rows ?? []) withdrawals.set(r.withdrawal_id, withdrawalFromRow(r));
  for (const r of bal?.rows ?? []) stored.set(r.account, r.balance);
  for (const r of pk?.rows ?? []) packets.set(r.packet_id, packetFromRow(r));
  for (const r of cl?.rows ?? []) claims.set(`${r.packet_id}/${r.seq}`, claimFromRow(r));
  for (const r of gp?.rows ?? []) packs.set(r.record.grantId, r.record);
  return { tokens, withdrawals, stored, packets, claims, packs };
}

/** Folds new events with the domain rules and writes what they changed. */
async function writeEffects(client: pg.PoolClient, batch: readonly Positioned[]): Promise<void> {
  const { tokens: knownTokens, withdrawals: knownWithdrawals, stored, packets: knownPackets, claims: knownClaims, packs: knownPacks } = await loadView(client, batch.map((b) => b.event));
  const packsBefore = new Map(knownPacks);
  const balances = new Map<string, { currency: Currency; delta: number }>();
  // The fold sees the state before each event: stored rows overlaid by this batch's changes so far.
  const view: LedgerView = {
    token: (id) => knownTokens.get(id),
    withdrawal: (id) => knownWithdrawals.get(id),
    balance: (acct) => (stored.get(acct) ?? 0) + (balances.get(acct)?.delta ?? 0),
    packet: (id) => knownPackets.get(id),
    packetClaim: (id, seq) => knownClaims.get(`${id}/${seq}`),
    pack: (id) => knownPacks.get(id),
  };
  const touchedPacks = new Set<string>();
  const touchedPackets = new Set<string>();
  const newClaims: PacketClaimRecord[] = [];
  const newCredits: PacketCreditRecord[] = [];
  const drawWins: DrawWinRecord[] = [];
  const goodsGrants: GoodsGrantRecord[] = [];

  const postings: (Posting & { eventId: string; leg: number; at: number })[] = [];
  const anomalies: (Anomaly & { eventId: string })[] = [];
  const touchedTokens = new Set<string>();
  const touchedWithdrawals = new Set<string>();
  // Statement position of a created entry: the offset of the event that created it.
  const seqOf = new Map<string, number>();
  for (const { event, offset } of batch) {
    const fx = effectsOf(event, view);
    assertBalanced(fx.postings);
    for (const [leg, p] of fx.postings.entries()) {
      postings.push({ ...p, eventId: event.data.eventId, leg, at: event.data.occurredAt });
      const b = balances.get(p.account) ?? { currency: p.currency, delta: 0 };
      b.delta += p.amount;
      balances.set(p.account, b);
    }
    for (const t of fx.tokens) {
      if (!knownTokens.has(t.tokenId)) seqOf.set(t.tokenId, offset);
      knownTokens.set(t.tokenId, t);
      touchedTokens.add(t.tokenId);
    }
    for (const w of fx.withdrawals) {
      if (!knownWithdrawals.has(w.withdrawalId)) seqOf.set(w.withdrawalId, offset);
      knownWithdrawals.set(w.withdrawalId, w);
      touchedWithdrawals.add(w.withdrawalId);
    }
    for (const p of fx.packets) {
      knownPackets.set(p.packetId, p);
      touchedPackets.add(p.packetId);
    }
    for (const c of fx.packetClaims) {
      knownClaims.set(`${c.packetId}/${c.seq}`, c);
      newClaims.push(c);
    }
    newCredits.push(...fx.packetCredits);
    drawWins.push(...fx.drawWins);
    goodsGrants.push(...fx.goodsGrants);
    for (const p of fx.packs) {
      knownPacks.set(p.grantId, p);
      touchedPacks.add(p.grantId);
    }
    anomalies.push(...fx.anomalies);
  }
  const tokens = [...touchedTokens].map((id) => knownTokens.get(id)!);
  const withdrawals = [...touchedWithdrawals].map((id) => knownWithdrawals.get(id)!);

  if (postings.length > 0) {
    await client.query(
      `insert into postings(event_id, leg, account, currency, amount, created_at)
       select * from unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])`,
      [postings.map((p) => p.eventId), postings.map((p) => p.leg), postings.map((p) => p.account), postings.map((p) => p.currency), postings.map((p) => p.amount), postings.map((p) => iso(p.at))],
    );
  }
  if (tokens.length > 0) {
    await client.query(
      `insert into tokens(token_id, user_id, activity_id, scene_id, order_no, amount, currency, status, issued_at, credited_at, statement_seq, budget_slice_end)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bigint[])
       on conflict (token_id) do update set status = excluded.status, credited_at = excluded.credited_at`,
      [
        tokens.map((t) => t.tokenId), tokens.map((t) => t.userId), tokens.map((t) => t.activityId), tokens.map((t) => t.sceneId),
        tokens.map((t) => t.orderNo), tokens.map((t) => t.amount), tokens.map((t) => t.currency), tokens.map((t) => t.status),
        tokens.map((t) => iso(t.issuedAt)), tokens.map((t) => (t.creditedAt === null ? null : iso(t.creditedAt))),
        tokens.map((t) => seqOf.get(t.tokenId) ?? 0), tokens.map((t) => t.budgetSliceEnd),
      ],
    );
  }
  if (withdrawals.length > 0) {
    await client.query(
      `insert into withdrawals(withdrawal_id, user_id, amount, currency, status, requested_at, resolved_at, reason, provider_ref, statement_seq, resolved_event_id)
       select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::bigint[], $11::uuid[])
       on conflict (withdrawal_id) do update set status = excluded.status, resolved_at = excluded.resolved_at, reason = excluded.reason,
                                                 provider_ref = excluded.provider_ref, resolved_event_id = excluded.resolved_event_id`,
      [
        withdrawals.map((w) => w.withdrawalId), withdrawals.map((w) => w.userId), withdrawals.map((w) => w.amount), withdrawals.map((w) => w.currency),
        withdrawals.map((w) => w.status), withdrawals.map((w) => iso(w.requestedAt)), withdrawals.map((w) => (w.resolvedAt === null ? null : iso(w.resolvedAt))),
        withdrawals.map((w) => w.reason), withdrawals.map((w) => w.providerRef), withdrawals.map((w) => seqOf.get(w.withdrawalId) ?? 0),
        withdrawals.map((w) => w.resolvedEventId),
      ],
    );
  }
  await writePackets(client, [...touchedPackets].map((id) => knownPackets.get(id)!), newClaims, newCredits);
  await writeDraws(client, drawWins, goodsGrants);
  await writePacks(client, [...touchedPacks].map((id) => ({ before: packsBefore.get(id), after: knownPacks.get(id)! })));
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

async function writePackets(client: pg.PoolClient, packets: PacketRecord[], claims: PacketClaimRecord[], credits: PacketCreditRecord[]): Promise<void> {
  if (packets.length > 0) {
    await client.query(
      `insert into packets(packet_id, sender_id, amount, currency, share_count, shares, greeting, created_at, expires_at, status,
                           claimed_count, claimed_amount, refunded_amount, closed_at)
       select q.packet_id, q.sender_id, q.amount, q.currency, q.share_count, array(select a.x::bigint from jsonb_array_elements_text(q.shares) with ordinality as a(x, i) order by a.i),
              q.greeting, q.created_at, q.expires_at, q.status, q.claimed_count, q.claimed_amount, q.refunded_amount, q.closed_at
         from unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::jsonb[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                     $10::text[], $11::int[], $12::bigint[], $13::bigint[], $14::timestamptz[])
           as q(packet_id, sender_id, amount, currency, share_count, shares, greeting, created_at, expires_at, status, claimed_count, claimed_amount, refunded_amount, closed_at)
       on conflict (packet_id) do update set status = excluded.status, claimed_count = excluded.claimed_count, claimed_amount = excluded.claimed_amount,
                                             refunded_amount = excluded.refunded_amount, closed_at = excluded.closed_at`,
      [
        packets.map((p) => p.packetId), packets.map((p) => p.senderId), packets.map((p) => p.amount), packets.map((p) => p.currency),
        packets.map((p) => p.count), packets.map((p) => JSON.stringify(p.shares)), packets.map((p) => p.greeting), packets.map((p) => iso(p.createdAt)),
        packets.map((p) => iso(p.expiresAt)), packets.map((p) => p.status), packets.map((p) => p.claimedCount), packets.map((p) => p.claimedAmount),
        packets.map((p) => p.refundedAmount), packets.map((p) => (p.closedAt === null ? null : iso(p.closedAt))),
      ],
    );
  }
  if (claims.length > 0) {
    await client.query(
      `insert into packet_claims(packet_id, seq, user_id, amount, currency, claimed_at)
       select * from unnest($1::uuid[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[])`,
      [claims.map((c) => c.packetId), claims.map((c) => c.seq), claims.map((c) => c.userId), claims.map((c) => c.amount), claims.map((c) => c.currency), claims.map((c) => iso(c.claimedAt))],
    );
  }
  if (credits.length > 0) {
    await client.query(
      `insert into packet_credits(packet_id, user_id, amount, currency, credited_at)
       select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[])`,
      [credits.map((c) => c.packetId), credits.map((c) => c.userId), credits.map((c) => c.amount), credits.map((c) => c.currency), credits.map((c) => iso(c.creditedAt))],
    );
  }
}

async function writeDraws(client: pg.PoolClient, wins: DrawWinRecord[], goods: GoodsGrantRecord[]): Promise<void> {
  if (wins.length > 0) {
    await client.query(
      `insert into draw_wins(activity_id, draw_id, child_id, scene_id, pool_id, prize_id, user_id, award_type, amount, currency, item_id, quantity, fulfilment_id, drawn_at)
       select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[],
                            $11::text[], $12::int[], $13::text[], $14::timestamptz[])`,
      [
        wins.map((w) => w.activityId), wins.map((w) => w.drawId), wins.map((w) => w.childId), wins.map((w) => w.sceneId), wins.map((w) => w.poolId),
        wins.map((w) => w.prizeId), wins.map((w) => w.userId), wins.map((w) => w.awardType), wins.map((w) => w.amount), wins.map((w) => w.currency),
        wins.map((w) => w.itemId), wins.map((w) => w.quantity), wins.map((w) => w.fulfilmentId), wins.map((w) => iso(w.drawnAt)),
      ],
    );
    // One row per prize, shared by every partition: summed per batch and locked in one order (see balances).
    const perPrize = new Map<string, { activityId: string; childId: string; prizeId: string; issued: number; last: number }>();
    for (const w of wins) {
      const key = JSON.stringify([w.activityId, w.childId, w.prizeId]);
      const p = perPrize.get(key) ?? { activityId: w.activityId, childId: w.childId, prizeId: w.prizeId, issued: 0, last: 0 };
      p.issued += 1;
      p.last = Math.max(p.last, w.drawnAt);
      perPrize.set(key, p);
    }
    const rows = [...perPrize].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p);
    await client.query(
      `insert into prize_consumption(activity_id, child_id, prize_id, issued, last_drawn_at)
       select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
       on conflict (activity_id, child_id, prize_id) do update
         set issued = prize_consumption.issued + excluded.issued, last_drawn_at = greatest(prize_consumption.last_drawn_at, excluded.last_drawn_at)`,
      [rows.map((r) => r.activityId), rows.map((r) => r.childId), rows.map((r) => r.prizeId), rows.map((r) => r.issued), rows.map((r) => iso(r.last))],
    );
  }
  if (goods.length > 0) {
    await client.query(
      `insert into goods_grants(grant_id, user_id, activity_id, scene_id, order_no, item_id, quantity, granted_at)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::timestamptz[])`,
      [goods.map((g) => g.grantId), goods.map((g) => g.userId), goods.map((g) => g.activityId), goods.map((g) => g.sceneId), goods.map((g) => g.orderNo),
        goods.map((g) => g.itemId), goods.map((g) => g.quantity), goods.map((g) => iso(g.grantedAt))],
    );
  }
}

async function writePacks(client: pg.PoolClient, changes: { before: PackRecord | undefined; after: PackRecord }[]): Promise<void> {
  if (changes.length === 0) return;
  const packs = changes.map((c) => c.after);
  await client.query(
    `insert into gift_pack_grants(grant_id, user_id, activity_id, order_no, pack_id, platform, status, granted_at, claimed_at, record)
     select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::jsonb[])
     on conflict (grant_id) do update set status = excluded.status, claimed_at = excluded.claimed_at, record = excluded.record`,
    [
      packs.map((p) => p.grantId), packs.map((p) => p.userId), packs.map((p) => p.activityId), packs.map((p) => p.orderNo), packs.map((p) => p.packId),
      packs.map((p) => p.platform), packs.map((p) => packStatusOf(p)), packs.map((p) => iso(p.grantedAt)),
      packs.map((p) => (p.claimedAt === null ? null : iso(p.claimedAt))), packs.map((p) => JSON.stringify(p)),
    ],
  );
  const coupons = packs.flatMap((p) => p.coupons.map((c) => ({ p, c, ...couponHoldOf(p, c) })));
  await client.query(
    `insert into user_coupons(coupon_id, grant_id, user_id, template_id, slot, platform, face_value, currency, expires_at, payment_id, frozen_until, redeemed_at)
     select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::timestamptz[], $10::text[], $11::timestamptz[], $12::timestamptz[])
     on conflict (coupon_id) do update set payment_id = excluded.payment_id, frozen_until = excluded.frozen_until, redeemed_at = excluded.redeemed_at`,
    [
      coupons.map((x) => x.c.couponId), coupons.map((x) => x.p.grantId), coupons.map((x) => x.p.userId), coupons.map((x) => x.c.templateId),
      coupons.map((x) => x.c.slot), coupons.map((x) => x.c.platform), coupons.map((x) => x.c.faceValue), coupons.map((x) => x.c.currency),
      coupons.map((x) => iso(x.c.expiresAt)), coupons.map((x) => x.paymentId), coupons.map((x) => (x.frozenUntil === null ? null : iso(x.frozenUntil))),
      coupons.map((x) => (x.redeemedAt === null ? null : iso(x.redeemedAt))),
    ],
  );
  // Per template, shared by every partition: summed per batch and locked in one order (see balances).
  const deltas = new Map<string, { issued: number; frozen: number; redeemed: number }>();
  for (const { before, after } of changes) {
    for (const [id, d] of templateCountsDelta(before, after)) {
      const cur = deltas.get(id) ?? { issued: 0, frozen: 0, redeemed: 0 };
      deltas.set(id, { issued: cur.issued + d.issued, frozen: cur.frozen + d.frozen, redeemed: cur.redeemed + d.redeemed });
    }
  }
  const rows = [...deltas].filter(([, d]) => d.issued !== 0 || d.frozen !== 0 || d.redeemed !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (rows.length === 0) return;
  await client.query(
    `insert into coupon_consumption(template_id, issued, frozen, redeemed)
     select * from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
     on conflict (template_id) do update set issued = coupon_consumption.issued + excluded.issued,
       frozen = coupon_consumption.frozen + excluded.frozen, redeemed = coupon_consumption.redeemed + excluded.redeemed`,
    [rows.map(([id]) => id), rows.map(([, d]) => d.issued), rows.map(([, d]) => d.frozen), rows.map(([, d]) => d.redeemed)],
  );
}
