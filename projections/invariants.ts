import type pg from 'pg';
import { account, isActivityBudget, mayGoNegative } from '../domain/accounts.ts';

/**
 * The ledger's invariants, checked against the Postgres projection:
 *  - every event's postings sum to zero, and so does the whole ledger (per currency);
 *  - every balance equals the sum of its account's postings (no drift);
 *  - no account but company:cost is below zero;
 *  - the budget slices of an activity's accepted tokens do not overlap, and the highest ends
 *    within what the activity's fundings brought (I10, ledger.ts): what the fold's per-token
 *    check took on trust (the funding a token records) is held against the fundings;
 *  - every settled payout has exactly one posting to external:payout behind it, and no
 *    posting reaches external:payout without a settled payout or a flagged duplicate (I6);
 *  - every red packet's escrow holds its total less what was claimed and refunded, and
 *    every share credited was claimed, with the same amount (I7);
 *  - no prize issued more than the quota in force, for scenes under stock control that take
 *    part in reconciliation (D1), and each prize's consumption is the count of its wins.
 *
 * One subtlety: funding is projected from the budget topic and grants from the wallet
 * topic, independently. A grant can therefore be projected a moment before the funding it
 * was accepted against, and the budget looks negative until the funding lands. A negative
 * budget (or a slice beyond the projected fundings) is only a violation once the budget topic
 * is fully projected; until then the check waits (up to `settleMs`) for it to catch up.
 */
export type Violation =
  | { kind: 'ledger_imbalance'; currency: string; sum: number }
  | { kind: 'unbalanced_event'; eventId: string; sum: number }
  | { kind: 'balance_drift'; account: string; balance: number; postings: number }
  | { kind: 'negative_balance'; account: string; balance: number }
  | { kind: 'budget_slice_overlap'; activityId: string; tokenId: string; sliceStart: number; sliceEnd: number; previousEnd: number }
  | { kind: 'budget_slice_beyond_funding'; activityId: string; sliceEnd: number; funded: number }
  | { kind: 'payout_postings'; withdrawalId: string; postings: number }
  | { kind: 'payout_posting_without_payout'; eventId: string; amount: number }
  | { kind: 'packet_escrow_mismatch'; packetId: string; escrow: number; expected: number }
  | { kind: 'packet_credit_without_claim'; packetId: string; userId: string; credited: number; claimed: number | null }
  | { kind: 'prize_over_quota'; activityId: string; childId: string; prizeId: string; issued: number; quota: number; configVersion: number }
  | { kind: 'prize_consumption_drift'; activityId: string; childId: string; prizeId: string; issued: number; wins: number }
  | { kind: 'coupon_over_stock'; templateId: string; issued: number; totalStock: number }
  | { kind: 'coupon_consumption_drift'; templateId: string; counted: [number, number, number]; coupons: [number, number, number] };

export interface InvariantReport {
  ok: boolean;
  checkedAt: string;
  accounts: number;
  postings: number;
  settledPayouts: number;
  violations: Violation[];
}

export interface InvariantOptions {
  /** How many budget-topic messages the projector has yet to apply; 0 when caught up. */
  budgetLag(): Promise<number>;
  settleMs?: number;
}

async function snapshot(pool: pg.Pool) {
  const client = await pool.connect();
  try {
    // One consistent snapshot for all the checks below.
    await client.query('begin isolation level repeatable read read only');
    const totals = await client.query<{ currency: string; sum: number; n: number }>(
      'select currency, coalesce(sum(amount), 0)::bigint as sum, count(*)::bigint as n from postings group by currency',
    );
    const unbalanced = await client.query<{ event_id: string; sum: number }>(
      'select event_id, sum(amount)::bigint as sum from postings group by event_id having sum(amount) <> 0 limit 100',
    );
    const drift = await client.query<{ account: string; balance: number; postings: number }>(
      `select coalesce(b.account, p.account) as account, coalesce(b.balance, 0) as balance, coalesce(p.sum, 0)::bigint as postings
         from account_balances b
         full join (select account, sum(amount)::bigint as sum from postings group by account) p on p.account = b.account
        where coalesce(b.balance, 0) <> coalesce(p.sum, 0) limit 100`,
    );
    const negative = await client.query<{ account: string; balance: number }>('select account, balance from account_balances where balance < 0');
    // I10: in start order, each slice of an activity starts at or after every earlier one ends
    // (tokens projected before slices existed have none and are left out).
    const sliceOverlaps = await client.query<{ activity_id: string; token_id: string; slice_start: number; slice_end: number; previous_end: number }>(
      `select activity_id, token_id::text, slice_start, slice_end, previous_end from (
         select activity_id, token_id, budget_slice_end - amount as slice_start, budget_slice_end as slice_end,
                max(budget_slice_end) over (partition by activity_id order by budget_slice_end - amount, token_id
                                            rows between unbounded preceding and 1 preceding) as previous_end
           from tokens where budget_slice_end is not null) s
        where slice_start < previous_end limit 100`,
    );
    // ... and the highest ends within the activity's fundings (the only postings that credit a budget).
    const slicesBeyond = await client.query<{ activity_id: string; slice_end: number; funded: number }>(
      `select t.activity_id, t.slice_end, coalesce(f.funded, 0)::bigint as funded
         from (select activity_id, max(budget_slice_end) as slice_end from tokens where budget_slice_end is not null group by activity_id) t
         left join lateral (select sum(p.amount) as funded from postings p where p.account = 'activity:' || t.activity_id || ':budget' and p.amount > 0) f on true
        where t.slice_end > coalesce(f.funded, 0) limit 100`,
    );
    const payouts = await client.query<{ withdrawal_id: string; n: number }>(
      `select w.withdrawal_id, count(p.event_id)::bigint as n
         from withdrawals w
         left join postings p on p.event_id = w.resolved_event_id and p.account = $1
        where w.status = 'settled'
        group by w.withdrawal_id`,
      [account.externalPayout()],
    );
    const orphans = await client.query<{ event_id: string; amount: number }>(
      `select p.event_id, p.amount from postings p
        where p.account = $1
          and not exists (select 1 from withdrawals w where w.resolved_event_id = p.event_id and w.status = 'settled')
          and not exists (select 1 from ledger_events e where e.event_id = p.event_id and e.event_type = 'PayoutDuplicateFlagged')
        limit 100`,
      [account.externalPayout()],
    );
    const escrows = await client.query<{ packet_id: string; escrow: number; expected: number }>(
      `select p.packet_id, coalesce(b.balance, 0) as escrow,
              case when p.status = 'rejected' then 0 else p.amount - p.claimed_amount - p.refunded_amount end as expected
         from packets p left join account_balances b on b.account = 'packet:' || p.packet_id || ':escrow'
        where coalesce(b.balance, 0) <> case when p.status = 'rejected' then 0 else p.amount - p.claimed_amount - p.refunded_amount end
        limit 100`,
    );
    const credits = await client.query<{ packet_id: string; user_id: string; credited: number; claimed: number | null }>(
      `select k.packet_id, k.user_id, k.amount as credited, c.amount as claimed
         from packet_credits k left join packet_claims c on c.packet_id = k.packet_id and c.user_id = k.user_id
        where c.amount is distinct from k.amount limit 100`,
    );
    // D1 against the configuration in force, for scenes under stock control that take part in reconciliation.
    const overQuota = await client.query<{ activity_id: string; child_id: string; prize_id: string; issued: number; quota: number; version: number }>(
      `with current as (
         select distinct on (activity_id) activity_id, version, config from campaign_configs order by activity_id, version desc
       ), quotas as (
         select c.activity_id, c.version, ch->>'childId' as child_id, p->>'prizeId' as prize_id, (p->>'quota')::bigint as quota
           from current c, jsonb_array_elements(c.config->'children') ch, jsonb_array_elements(ch->'scenes') s, jsonb_array_elements(s->'pool'->'prizes') p
          where (s->>'stockControl')::boolean and (s->>'reconcile')::boolean
       )
       select q.activity_id, q.child_id, q.prize_id, pc.issued, q.quota, q.version
         from quotas q join prize_consumption pc using (activity_id, child_id, prize_id)
        where pc.issued > q.quota limit 100`,
    );
    const consumptionDrift = await client.query<{ activity_id: string; child_id: string; prize_id: string; issued: number; wins: number }>(
      `select coalesce(pc.activity_id, w.activity_id) as activity_id, coalesce(pc.child_id, w.child_id) as child_id, coalesce(pc.prize_id, w.prize_id) as prize_id,
              coalesce(pc.issued, 0) as issued, coalesce(w.n, 0) as wins
         from prize_consumption pc
         full join (select activity_id, child_id, prize_id, count(*)::bigint as n from draw_wins group by 1, 2, 3) w using (activity_id, child_id, prize_id)
        where coalesce(pc.issued, 0) <> coalesce(w.n, 0) limit 100`,
    );
    // C1, and the per-template counts against the per-user coupons they summarise.
    const overStock = await client.query<{ template_id: string; issued: number; total_stock: number }>(
      `select c.template_id, c.issued, t.total_stock from coupon_consumption c join coupon_templates t using (template_id)
        where c.issued > t.total_stock limit 100`,
    );
    const couponDrift = await client.query<{ template_id: string; issued: number; frozen: number; redeemed: number; n: number; f: number; r: number }>(
      `select coalesce(c.template_id, u.template_id) as template_id, coalesce(c.issued, 0) as issued, coalesce(c.frozen, 0) as frozen, coalesce(c.redeemed, 0) as redeemed,
              coalesce(u.n, 0) as n, coalesce(u.f, 0) as f, coalesce(u.r, 0) as r
         from coupon_consumption c
         full join (select template_id, count(*)::bigint as n, count(payment_id)::bigint as f, count(redeemed_at)::bigint as r from user_coupons group by 1) u using (template_id)
        where (coalesce(c.issued, 0), coalesce(c.frozen, 0), coalesce(c.redeemed, 0)) <> (coalesce(u.n, 0), coalesce(u.f, 0), coalesce(u.r, 0)) limit 100`,
    );
    const accounts = await client.query<{ n: number }>('select count(*)::bigint as n from account_balances');
    await client.query('commit');
    return {
      totals: totals.rows, unbalanced: unbalanced.rows, drift: drift.rows, negative: negative.rows, sliceOverlaps: sliceOverlaps.rows, slicesBeyond: slicesBeyond.rows,
      payouts: payouts.rows, orphans: orphans.rows,
      escrows: escrows.rows, credits: credits.rows, overQuota: overQuota.rows, consumptionDrift: consumptionDrift.rows,
      overStock: overStock.rows, couponDrift: couponDrift.rows, accounts: accounts.rows[0]!.n,
    };
  } finally {
    client.release();
  }
}

export async function checkInvariants(pool: pg.Pool, opts: InvariantOptions): Promise<InvariantReport> {
  const deadline = Date.now() + (opts.settleMs ?? 5_000);
  for (;;) {
    const s = await snapshot(pool);
    const negatives = s.negative.filter((n) => !mayGoNegative(n.account));
    // A grant projected before the funding it was accepted against: wait for the budget topic.
    const budgetShort = negatives.some((n) => isActivityBudget(n.account)) || s.slicesBeyond.length > 0;
    if (budgetShort && Date.now() < deadline && (await opts.budgetLag()) > 0) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    const violations: Violation[] = [
      ...s.totals.filter((t) => t.sum !== 0).map((t) => ({ kind: 'ledger_imbalance' as const, currency: t.currency, sum: t.sum })),
      ...s.unbalanced.map((u) => ({ kind: 'unbalanced_event' as const, eventId: u.event_id, sum: u.sum })),
      ...s.drift.map((d) => ({ kind: 'balance_drift' as const, account: d.account, balance: d.balance, postings: d.postings })),
      ...negatives.map((n) => ({ kind: 'negative_balance' as const, account: n.account, balance: n.balance })),
      ...s.sliceOverlaps.map((o) => ({
        kind: 'budget_slice_overlap' as const, activityId: o.activity_id, tokenId: o.token_id, sliceStart: Number(o.slice_start), sliceEnd: Number(o.slice_end), previousEnd: Number(o.previous_end),
      })),
      ...s.slicesBeyond.map((b) => ({ kind: 'budget_slice_beyond_funding' as const, activityId: b.activity_id, sliceEnd: Number(b.slice_end), funded: Number(b.funded) })),
      ...s.payouts.filter((p) => p.n !== 1).map((p) => ({ kind: 'payout_postings' as const, withdrawalId: p.withdrawal_id, postings: p.n })),
      ...s.orphans.map((o) => ({ kind: 'payout_posting_without_payout' as const, eventId: o.event_id, amount: o.amount })),
      ...s.escrows.map((e) => ({ kind: 'packet_escrow_mismatch' as const, packetId: e.packet_id, escrow: e.escrow, expected: e.expected })),
      ...s.credits.map((c) => ({ kind: 'packet_credit_without_claim' as const, packetId: c.packet_id, userId: c.user_id, credited: c.credited, claimed: c.claimed })),
      ...s.overQuota.map((q) => ({
        kind: 'prize_over_quota' as const, activityId: q.activity_id, childId: q.child_id, prizeId: q.prize_id, issued: Number(q.issued), quota: Number(q.quota), configVersion: q.version,
      })),
      ...s.consumptionDrift.map((d) => ({
        kind: 'prize_consumption_drift' as const, activityId: d.activity_id, childId: d.child_id, prizeId: d.prize_id, issued: Number(d.issued), wins: Number(d.wins),
      })),
      ...s.overStock.map((o) => ({ kind: 'coupon_over_stock' as const, templateId: o.template_id, issued: Number(o.issued), totalStock: Number(o.total_stock) })),
      ...s.couponDrift.map((d) => ({
        kind: 'coupon_consumption_drift' as const, templateId: d.template_id,
        counted: [Number(d.issued), Number(d.frozen), Number(d.redeemed)] as [number, number, number], coupons: [Number(d.n), Number(d.f), Number(d.r)] as [number, number, number],
      })),
    ];
    return {
      ok: violations.length === 0,
      checkedAt: new Date().toISOString(),
      accounts: s.accounts,
      postings: s.totals.reduce((n, t) => n + t.n, 0),
      settledPayouts: s.payouts.length,
      violations,
    };
  }
}
