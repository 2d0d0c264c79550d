// After the campaign has quiesced: the client's book against the ledger (its Postgres
// projection and command side), the provider's own records, the replay audit and the
// invariants; the 500/503 accounting; the recovery times. Each check is a row of the
// printed table, with how many things it checked and how many disagreed (and examples).
import { spawn } from 'node:child_process';
import { tokenIdFor } from '../../domain/grants.ts';
import { settledEventIdFor } from '../../domain/withdrawals.ts';
import { drawEventIdFor, drawOrderNo } from '../../domain/campaigns.ts';
import { account } from '../../domain/accounts.ts';
import type { Answer, Attempt, ChaosClient } from './client.ts';
import { root, type Cluster, type ProcessName, PROCESS_NAMES } from './cluster.ts';
import { Book, firstOk, type Rec, CAMPAIGN, CHILD_ACTIVITY, GRANT_ACTIVITIES, PRIZES, PLATFORMS, SLOTS, templateOf } from './campaign.ts';
import { confounders, faultWindows, type FaultRecord } from './faults.ts';

export interface CheckRow {
  check: string;
  /** 'target': a recovery time against its target, reported apart from the discrepancies (it depends on the machine's load). */
  kind: 'check' | 'target';
  checked: number;
  bad: number;
  /** A few of the disagreements, to act on. */
  examples: string[];
  note?: string;
}

class Row implements CheckRow {
  kind: 'check' | 'target' = 'check';
  checked = 0;
  bad = 0;
  examples: string[] = [];
  note?: string;
  constructor(readonly check: string) {}
  ok(cond: boolean, what: () => string): void {
    this.checked++;
    if (cond) return;
    this.bad++;
    if (this.examples.length < 8) this.examples.push(what());
  }
}

const answers = <T>(rec: Rec<T>): Answer[] => rec.sent.flatMap((s) => (s.answer ? [s.answer] : []));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export async function runChecks(c: Cluster, book: Book, client: ChaosClient, faults: FaultRecord[]): Promise<CheckRow[]> {
  const q = async <T = any>(sql: string, params: unknown[] = []) => (await c.pool.query(sql, params)).rows as T[];
  const rows: Row[] = [];
  const row = (name: string) => { const r = new Row(name); rows.push(r); return r; };

  // --- grants -----------------------------------------------------------------------------
  const tokens = new Map((await q<{ token_id: string; user_id: string; activity_id: string; order_no: string; amount: number; status: string }>(
    'select token_id::text, user_id, activity_id, order_no, amount, status from tokens')).map((t) => [t.token_id, t]));
  const grantOk = row('grants: every 2xx is one credited token of the answered amount');
  const grantNo = row('grants: no 4xx grant moved money');
  const acceptedTokens = new Set<string>();
  for (const rec of book.grants.values()) {
    const i = rec.intent;
    const id = tokenIdFor(i.activityId, i.orderNo);
    const first = firstOk(rec);
    if (first) {
      acceptedTokens.add(id);
      const t = tokens.get(id);
      grantOk.ok(!!t && first.body.tokenId === id && first.body.amount === i.amount && t.amount === i.amount && t.user_id === i.userId && t.status === 'credited',
        () => `order ${i.orderNo}: answered ${first.body.tokenId} ${first.body.amount} fen; ledger ${t ? `${t.amount} fen, ${t.status}, ${t.user_id}` : 'no token'}`);
    } else if (answers(rec).length > 0) {
      grantNo.ok(!tokens.has(id), () => `order ${i.orderNo} answered ${answers(rec).map((a) => `${a.status} ${a.body?.code}`).join(', ')} but the ledger has token ${id}`);
    }
  }
  for (const rec of book.grantConflicts.values()) {
    for (const a of answers(rec)) grantNo.ok(a.status === 409 && a.body?.code === 'ORDER_CONFLICT', () => `order ${rec.intent.orderNo} sent again with ${rec.intent.amount} fen: ${a.status} ${a.body?.code}`);
  }
  for (const t of tokens.values()) {
    if (GRANT_ACTIVITIES.includes(t.activity_id)) grantNo.ok(acceptedTokens.has(t.token_id), () => `token ${t.token_id} (order ${t.order_no}, ${t.amount} fen) was never answered 2xx`);
  }

  // --- budgets ----------------------------------------------------------------------------
  const budgetRow = row('budgets: issued <= funded per activity, as the book says');
  const budgets = new Map((await q<{ activity_id: string; funded: number; reserved: number }>('select activity_id, funded, reserved from budgets')).map((b) => [b.activity_id, b]));
  const balances = new Map((await q<{ account: string; balance: number }>('select account, balance from account_balances')).map((b) => [b.account, Number(b.balance)]));
  const drawWins = [...book.draws.values()].flatMap((r) => { const a = firstOk(r); return a && a.body.outcome === 'won' ? [{ rec: r, a }] : []; });
  for (const activity of [...GRANT_ACTIVITIES, CHILD_ACTIVITY]) {
    const funded = sum([...book.fundings.values()].filter((f) => f.intent.activityId === activity && firstOk(f)).map((f) => f.intent.amount));
    const issued = activity === CHILD_ACTIVITY
      ? sum(drawWins.map((w) => w.a.body.prize.amount as number))
      : sum([...book.grants.values()].filter((g) => g.intent.activityId === activity && firstOk(g)).map((g) => g.intent.amount));
    const b = budgets.get(activity);
    const projected = sum([...tokens.values()].filter((t) => t.activity_id === activity).map((t) => t.amount));
    const left = balances.get(account.activityBudget(activity)) ?? 0;
    budgetRow.ok(issued <= funded && !!b && b.funded === funded && b.reserved === issued && projected === issued && left === funded - issued,
      () => `${activity}: book funded ${funded}, issued ${issued}; budgets row ${b ? `${b.funded}/${b.reserved}` : 'missing'}; projected tokens ${projected}; budget account ${left}`);
  }

  // --- retries ----------------------------------------------------------------------------
  // A key accepted once answers every later request with its first answer. A refusal is not
  // remembered (nothing is written), so a request refused before the key was accepted is a
  // different moment (budget or funds came in between), not a wrong answer: each refusal is
  // placed against the moment the ledger accepted the key (the journal's accepted_at, the
  // request row's created_at: the accepting transaction's start).
  const retryRow = row('retries: every retry (order number, draw id, key) got its first answer');
  const acceptedAt = new Map((await q<{ command_key: string; at: Date }>('select command_key, accepted_at as at from journal')).map((j) => [j.command_key, j.at.getTime()]));
  const packsAt = new Map((await q<{ order_no: string; at: Date }>('select order_no, granted_at as at from gift_pack_grants')).map((g) => [g.order_no, g.at.getTime()]));
  const fundedAt = new Map((await q<{ activity_id: string; funding_id: string; at: Date }>('select activity_id, funding_id, funded_at as at from fundings')).map((f) => [`${f.activity_id}/${f.funding_id}`, f.at.getTime()]));
  const same = {
    grant: (a: any) => JSON.stringify([a.tokenId, a.token, a.amount, a.issuedAt]),
    draw: (a: any) => JSON.stringify([a.outcome, a.reason, a.prize?.prizeId, a.token?.tokenId, a.drawnAt, a.childId]),
    withdrawal: (a: any) => JSON.stringify([a.withdrawalId, a.amount]),
    packet: (a: any) => JSON.stringify([a.packetId, a.amount, a.count, a.createdAt, a.expiresAt]),
    grab: (a: any) => JSON.stringify([a.seq, a.amount, a.claimedAt]),
    coupon: (a: any) => JSON.stringify([a.grantId, (a.pack?.coupons ?? []).map((x: any) => x.couponId).sort()]),
    funding: (a: any) => JSON.stringify([a.fundingId]),
  };
  let refusedBefore = 0;
  const retries = <T>(kind: keyof typeof same, m: Map<string, Rec<T>>, accepted: (rec: Rec<T>, first: Answer) => number | undefined) => {
    for (const rec of m.values()) {
      const all = answers(rec);
      if (all.length < 2) continue;
      const first = firstOk(rec);
      if (!first) continue;
      const want = same[kind](first.body);
      const at = accepted(rec, first) ?? first.sentAt;
      for (const a of all) {
        if (a === first) continue;
        if (a.status >= 300) {
          if (a.answeredAt < at) { refusedBefore++; continue; }
          retryRow.ok(false, () => `${kind} ${rec.key}: ${a.status} ${a.body?.code} answered ${new Date(a.answeredAt).toISOString()} (sent ${new Date(a.sentAt).toISOString()}), after the ledger accepted it at ${new Date(at).toISOString()} (first answer ${first.status} at ${new Date(first.answeredAt).toISOString()})`);
        } else {
          retryRow.ok(same[kind](a.body) === want, () => `${kind} ${rec.key}: answered ${same[kind](a.body)}, first ${want}`);
        }
      }
    }
  };
  retries('grant', book.grants, (_r, f) => acceptedAt.get(`grant:${f.body.tokenId}`));
  retries('draw', book.draws, (r) => acceptedAt.get(`draw:${drawEventIdFor(CAMPAIGN, r.intent.drawId)}`));
  retries('withdrawal', book.withdrawals, (_r, f) => acceptedAt.get(`withdrawal:${f.body.withdrawalId}`));
  retries('packet', book.packets, (_r, f) => acceptedAt.get(`packet:${f.body.packetId}`));
  retries('grab', book.grabs, (r) => acceptedAt.get(`claim:${r.intent.packetId}:${r.intent.userId}`));
  retries('coupon', book.coupons, (r) => packsAt.get(r.intent.orderNo));
  retries('funding', book.fundings, (r) => fundedAt.get(r.key));
  retryRow.note = `${refusedBefore} refusals came before the key was accepted`;

  // --- draws ------------------------------------------------------------------------------
  const drawRow = row('draws: a cash win is paid once, a "no win" never');
  const wins = new Map((await q<{ draw_id: string; prize_id: string; user_id: string; amount: number }>(
    'select draw_id, prize_id, user_id, amount from draw_wins where activity_id = $1', ['shake'])).map((w) => [w.draw_id, w]));
  const wonOrders = new Set<string>();
  for (const rec of book.draws.values()) {
    const first = firstOk(rec);
    if (!first) continue;
    const id = tokenIdFor(CHILD_ACTIVITY, drawOrderNo(rec.intent.drawId));
    const t = tokens.get(id);
    const w = wins.get(rec.intent.drawId);
    if (first.body.outcome === 'won') {
      wonOrders.add(id);
      const amount = first.body.prize?.amount;
      drawRow.ok(!!t && t.amount === amount && t.status === 'credited' && t.user_id === rec.intent.userId && first.body.token?.tokenId === id && w?.prize_id === first.body.prize?.prizeId,
        () => `draw ${rec.intent.drawId} won ${first.body.prize?.prizeId} (${amount} fen); ledger token ${t ? `${t.amount} ${t.status}` : 'missing'}, win ${w?.prize_id ?? 'missing'}`);
    } else {
      drawRow.ok(!t && !w, () => `draw ${rec.intent.drawId} answered no win (${first.body.reason}) but the ledger has ${t ? `token ${t.amount} fen` : ''} ${w ? `win ${w.prize_id}` : ''}`);
    }
  }
  for (const t of tokens.values()) {
    if (t.activity_id === CHILD_ACTIVITY) drawRow.ok(wonOrders.has(t.token_id), () => `draw token ${t.token_id} (${t.order_no}) was never answered as a win`);
  }
  const quotaRow = row('draws: wins per prize <= quota');
  const consumption = new Map((await q<{ prize_id: string; issued: number }>('select prize_id, issued from prize_consumption where activity_id = $1', ['shake'])).map((p) => [p.prize_id, Number(p.issued)]));
  for (const [name, quota] of Object.entries(book.sizing.quotas) as ['small' | 'big', number][]) {
    const prizeId = PRIZES[name].prizeId;
    const booked = drawWins.filter((w) => w.a.body.prize?.prizeId === prizeId).length;
    const projected = consumption.get(prizeId) ?? 0;
    const rowsWon = [...wins.values()].filter((w) => w.prize_id === prizeId).length;
    quotaRow.ok(booked <= quota && projected === booked && rowsWon === booked, () => `${prizeId}: quota ${quota}, answered wins ${booked}, prize_consumption ${projected}, draw_wins ${rowsWon}`);
  }

  // --- withdrawals ------------------------------------------------------------------------
  const wRow = row('withdrawals: every 2xx paid exactly once at the provider, left the balance once');
  const wNo = row('withdrawals: no 4xx withdrawal moved money');
  const projectedW = new Map((await q<{ withdrawal_id: string; user_id: string; amount: number; status: string }>(
    'select withdrawal_id::text, user_id, amount, status from withdrawals')).map((w) => [w.withdrawal_id, w]));
  const payments = new Map<string, { amount: number; status: string; user_id: string }[]>();
  for (const p of (await c.pspPool.query<{ payout_id: string; amount: number; status: string; user_id: string }>('select payout_id, amount, status, user_id from payments')).rows) {
    payments.set(p.payout_id, [...(payments.get(p.payout_id) ?? []), p]);
  }
  const legs = new Map<string, { account: string; amount: number }[]>();
  for (const p of await q<{ event_id: string; account: string; amount: number }>(
    `select p.event_id::text, p.account, p.amount from postings p join ledger_events e using (event_id)
      where e.event_type in ('WithdrawalRequested', 'PayoutSettled', 'PayoutFailed', 'PayoutDuplicateFlagged')`)) {
    legs.set(p.event_id, [...(legs.get(p.event_id) ?? []), p]);
  }
  const booked = new Set<string>();
  for (const rec of book.withdrawals.values()) {
    const first = firstOk(rec);
    const i = rec.intent;
    if (!first) continue; // a refusal: checked below (no withdrawal, no payment the book does not have)
    const id = first.body.withdrawalId as string;
    booked.add(id);
    const w = projectedW.get(id);
    const paid = payments.get(id) ?? [];
    const requested = legs.get(id) ?? [];
    const settled = legs.get(settledEventIdFor(id)) ?? [];
    const out = settled.filter((l) => l.account === account.externalPayout());
    wRow.ok(!!w && w.status === 'settled' && w.amount === i.amount && paid.length === 1 && paid[0]!.status === 'succeeded' && paid[0]!.amount === i.amount
      && requested.length === 2 && requested.some((l) => l.account === account.user(i.userId, 'available') && l.amount === -i.amount)
      && out.length === 1 && out[0]!.amount === i.amount,
      () => `withdrawal ${id} (${i.userId}, ${i.amount} fen): ledger ${w ? `${w.status} ${w.amount}` : 'missing'}; provider ${paid.map((p) => `${p.status} ${p.amount}`).join(', ') || 'no payment'}; postings requested ${requested.length}, paid out ${out.length}`);
  }
  for (const w of projectedW.values()) wNo.ok(booked.has(w.withdrawal_id), () => `withdrawal ${w.withdrawal_id} (${w.user_id}, ${w.amount} fen, ${w.status}) was never answered 2xx`);
  for (const id of payments.keys()) wNo.ok(booked.has(id), () => `the provider paid ${id}, which was never answered 2xx`);

  // --- red packets ------------------------------------------------------------------------
  const pRow = row('packets: claims <= total, claims + refund = total after expiry');
  const gRow = row('packets: every 2xx grab is its claim, credited; no other claim');
  const packets = new Map((await q<{ packet_id: string; sender_id: string; amount: number; share_count: number; status: string; claimed_count: number; claimed_amount: number; refunded_amount: number }>(
    'select packet_id::text, sender_id, amount, share_count, status, claimed_count, claimed_amount, refunded_amount from packets')).map((p) => [p.packet_id, p]));
  const claims = new Map((await q<{ packet_id: string; user_id: string; seq: number; amount: number }>(
    'select packet_id::text, user_id, seq, amount from packet_claims')).map((x) => [`${x.packet_id}/${x.user_id}`, x]));
  const credits = new Map((await q<{ packet_id: string; user_id: string; amount: number }>(
    'select packet_id::text, user_id, amount from packet_credits')).map((x) => [`${x.packet_id}/${x.user_id}`, x]));
  const bookedPackets = new Map<string, Rec<any>>();
  for (const rec of book.packets.values()) {
    const first = firstOk(rec);
    if (!first) continue;
    const id = first.body.packetId as string;
    bookedPackets.set(id, rec);
    const p = packets.get(id);
    const grabbed = [...book.grabs.values()].filter((g) => g.intent.packetId === id).flatMap((g) => { const a = firstOk(g); return a ? [a] : []; });
    const grabbedSum = sum(grabbed.map((a) => a.body.amount as number));
    pRow.ok(!!p && p.amount === rec.intent.amount && p.share_count === rec.intent.count && p.claimed_amount <= p.amount && p.claimed_count <= p.share_count
      && (p.status === 'refunded' || p.status === 'finished') && p.claimed_amount + p.refunded_amount === p.amount
      && p.claimed_amount === grabbedSum && p.claimed_count === grabbed.length,
      () => `packet ${id} (${rec.intent.amount} fen / ${rec.intent.count}): ledger ${p ? `${p.status}, claimed ${p.claimed_count} = ${p.claimed_amount}, refunded ${p.refunded_amount}` : 'missing'}; book: ${grabbed.length} grabs = ${grabbedSum}`);
  }
  for (const p of packets.values()) pRow.ok(bookedPackets.has(p.packet_id), () => `packet ${p.packet_id} (${p.sender_id}, ${p.amount} fen) was never answered 2xx`);
  for (const rec of book.grabs.values()) {
    const first = firstOk(rec);
    const key = `${rec.intent.packetId}/${rec.intent.userId}`;
    const claim = claims.get(key);
    const credit = credits.get(key);
    if (first) {
      gRow.ok(!rec.intent.late && !!claim && claim.amount === first.body.amount && claim.seq === first.body.seq && credit?.amount === claim.amount,
        () => `grab ${key}${rec.intent.late ? ' (after expiry)' : ''}: answered seq ${first.body.seq} ${first.body.amount} fen; claim ${claim ? `${claim.seq} ${claim.amount}` : 'missing'}; credit ${credit?.amount ?? 'missing'}`);
    } else if (answers(rec).length > 0) {
      gRow.ok(!claim, () => `grab ${key} answered ${answers(rec).map((a) => `${a.status} ${a.body?.code}`).join(', ')} but the ledger has claim ${claim!.seq} (${claim!.amount} fen)`);
      // The packet was answered 201 before anyone grabbed it: it exists, whatever Redis forgot.
      const lost = answers(rec).find((a) => a.status === 404);
      gRow.ok(!lost, () => `grab ${key}${rec.intent.late ? ' (after expiry)' : ''} answered 404 ${lost!.body?.code} for a packet answered 201`);
    }
  }
  for (const [key, claim] of claims) gRow.ok(book.grabs.has(key) && !!firstOk(book.grabs.get(key)!), () => `claim ${key} (${claim.amount} fen) was never answered 2xx`);

  // --- coupons ----------------------------------------------------------------------------
  const cRow = row('coupons: every 2xx is one pack, none for a refusal; issued <= stock');
  const packs = new Map((await q<{ grant_id: string; user_id: string; order_no: string; platform: string }>(
    'select grant_id::text, user_id, order_no, platform from gift_pack_grants')).map((g) => [g.order_no, g]));
  const grantedByPlatform = new Map<string, number>();
  for (const rec of book.coupons.values()) {
    const first = firstOk(rec);
    const g = packs.get(rec.intent.orderNo);
    if (first) {
      grantedByPlatform.set(rec.intent.platform, (grantedByPlatform.get(rec.intent.platform) ?? 0) + 1);
      cRow.ok(!!g && g.grant_id === first.body.grantId && g.user_id === rec.intent.userId && g.platform === rec.intent.platform,
        () => `pack order ${rec.intent.orderNo}: answered ${first.body.grantId}; ledger ${g ? `${g.grant_id} ${g.user_id} ${g.platform}` : 'missing'}`);
    } else if (answers(rec).length > 0) {
      cRow.ok(!g, () => `pack order ${rec.intent.orderNo} answered ${answers(rec).map((a) => `${a.status} ${a.body?.code}`).join(', ')} but the ledger has pack ${g!.grant_id}`);
    }
  }
  const cons = new Map((await q<{ template_id: string; issued: number }>('select template_id, issued from coupon_consumption')).map((x) => [x.template_id, Number(x.issued)]));
  for (const platform of PLATFORMS) {
    for (const [slot] of SLOTS) {
      const id = templateOf(platform, slot);
      const issued = cons.get(id) ?? 0;
      const want = grantedByPlatform.get(platform) ?? 0;
      cRow.ok(issued <= book.sizing.couponStock && issued === want, () => `template ${id}: stock ${book.sizing.couponStock}, issued ${issued}, packs answered 2xx ${want}`);
    }
  }

  const useRow = row('coupons: a redeemed coupon is redeemed once; an abandoned hold is released by the keeper');
  const userCoupons = new Map((await q<{ coupon_id: string; template_id: string; payment_id: string | null; frozen_until: Date | null; redeemed_at: Date | null }>(
    'select coupon_id::text, template_id, payment_id, frozen_until, redeemed_at from user_coupons')).map((x) => [x.coupon_id, x]));
  const redeemedByTemplate = new Map<string, number>();
  for (const u of book.couponUses) {
    const i = u.intent;
    const frozen = firstOk(u.freeze);
    const redeemed = u.redeem ? firstOk(u.redeem) : null;
    const uc = userCoupons.get(i.couponId);
    if (redeemed) {
      redeemedByTemplate.set(i.templateId, (redeemedByTemplate.get(i.templateId) ?? 0) + 1);
      useRow.ok(!!uc && uc.redeemed_at !== null && redeemed.body.state === 'redeemed',
        () => `payment ${i.paymentId} redeemed coupon ${i.couponId} (answer ${redeemed.body.state}); ledger ${uc ? `redeemed ${uc.redeemed_at}` : 'no coupon'}`);
    } else if (frozen || answers(u.freeze).length > 0 || answers(u.claim).length > 0) {
      useRow.ok(!!uc && uc.redeemed_at === null && uc.frozen_until === null && uc.payment_id === null,
        () => `payment ${i.paymentId} ${frozen ? 'froze and left' : 'did not freeze'} coupon ${i.couponId}; ledger ${uc ? `payment ${uc.payment_id}, frozen until ${uc.frozen_until?.toISOString()}, redeemed ${uc.redeemed_at}` : 'no coupon'}`);
    }
  }
  const consumption2 = await q<{ template_id: string; frozen: number; redeemed: number }>('select template_id, frozen, redeemed from coupon_consumption');
  for (const x of consumption2) {
    useRow.ok(Number(x.frozen) === 0 && Number(x.redeemed) === (redeemedByTemplate.get(x.template_id) ?? 0),
      () => `template ${x.template_id}: ${x.frozen} frozen, ${x.redeemed} redeemed; the book: ${redeemedByTemplate.get(x.template_id) ?? 0} redeemed`);
  }
  const overdue = await q<{ n: number }>('select count(*)::int as n from pack_states where hold_expires_at is not null');
  useRow.ok(overdue[0]!.n === 0, () => `${overdue[0]!.n} packs still hold a coupon after the campaign`);

  // --- balances ---------------------------------------------------------------------------
  const bRow = row('balances: per user, the projection equals the client book');
  const expected = new Map<string, number>(book.users.map((u) => [u, 0]));
  const add = (u: string, n: number) => expected.set(u, (expected.get(u) ?? 0) + n);
  for (const rec of book.grants.values()) if (firstOk(rec)) add(rec.intent.userId, rec.intent.amount);
  for (const w of drawWins) add(w.rec.intent.userId, w.a.body.prize.amount);
  for (const rec of book.withdrawals.values()) if (firstOk(rec)) add(rec.intent.userId, -rec.intent.amount);
  for (const rec of book.grabs.values()) { const a = firstOk(rec); if (a) add(rec.intent.userId, a.body.amount); }
  for (const [id, rec] of bookedPackets) {
    const grabbed = sum([...book.grabs.values()].filter((g) => g.intent.packetId === id).map((g) => firstOk(g)?.body.amount ?? 0));
    add(rec.intent.senderId, -rec.intent.amount + (rec.intent.amount - grabbed));
  }
  for (const [u, want] of expected) {
    const available = balances.get(account.user(u, 'available')) ?? 0;
    const pending = balances.get(account.user(u, 'pending')) ?? 0;
    const withdrawing = balances.get(account.user(u, 'withdrawing')) ?? 0;
    bRow.ok(available === want && pending === 0 && withdrawing === 0, () => `${u}: book ${want}; ledger available ${available}, pending ${pending}, withdrawing ${withdrawing}`);
  }

  // --- the audit and the invariants -------------------------------------------------------
  const directEnv = { ...c.env, DATABASE_URL: c.cfg.databaseUrl };
  const reconcile = await runTool(['bin/hongbao-reconcile.mjs', '--credit-grace', '0', '--payout-grace', '0', '--out', `${c.logDir}/reports`], directEnv);
  const rRow = row('npm run reconcile: clean');
  rRow.ok(reconcile.code === 0, () => `exit ${reconcile.code}: ${reconcile.output.slice(-1500)}`);
  // The continuous reconciler (in the campaign, windows of 10 s audited 60 s behind, graces of 60 s) found nothing either.
  const cRuns = await q<{ range_to: Date; differences: number; by_kind: Record<string, number> }>(
    `select range_to, differences, by_kind from reconcile_runs where kind = 'continuous' order by range_to`);
  const crRow = row('continuous reconciler: no difference in the windows it audited');
  for (const r of cRuns) crRow.ok(r.differences === 0, () => `window to ${r.range_to.toISOString()}: ${r.differences} differences ${JSON.stringify(r.by_kind)}`);
  const invariants = await runTool(['--import', 'tsx', 'bin/invariants.ts'], directEnv);
  const iRow = row('npm run invariants: clean');
  iRow.ok(invariants.code === 0, () => `exit ${invariants.code}: ${invariants.output.slice(-1500)}`);

  // --- answers ----------------------------------------------------------------------------
  const windows = faultWindows(faults);
  const inWindow = (t: number) => windows.some((w) => t >= w.from && t <= w.to);
  const all = client.attempts;
  const e500 = row('answers: no 500 at all');
  for (const a of all) e500.ok(a.status !== 500, () => describeAttempt(a));
  const e503 = row('answers: 503 only inside fault windows');
  const unavailable = all.filter((a) => a.status === 503);
  for (const a of unavailable) e503.ok(inWindow(a.at) || inWindow(a.at + a.ms), () => `${describeAttempt(a)} outside any fault window`);
  e503.note = `${unavailable.length} answers 503, all ${unavailable.length - e503.bad} inside windows`;
  const slow = row('answers: no attempt timed out (5 s) outside fault windows');
  const timeouts = all.filter((a) => a.status === 'timeout');
  for (const a of timeouts) slow.ok(inWindow(a.at) || inWindow(a.at + a.ms), () => `${describeAttempt(a)} outside any fault window`);
  slow.note = `${timeouts.length} attempts timed out`;
  const unanswered = row('answers: every request got a final answer');
  unanswered.checked = all.length;
  for (const u of client.unanswered) unanswered.ok(false, () => `${u.route} ${u.key}: ${u.attempts.length} attempts, last ${u.attempts.at(-1)?.status}`);
  const readRow = row('answers: wallet reads answered 200');
  for (const s of book.reads) if (s.answer) readRow.ok(s.answer.status === 200, () => `read ${s.answer!.status} ${s.answer!.body?.code}`);

  // --- processes --------------------------------------------------------------------------
  const exitRow = row('processes: none crashed while running; none failed to start outside a fault window');
  let atStartup = 0;
  for (const name of PROCESS_NAMES) {
    for (const e of c.procs[name].unplannedExits()) {
      if (e.atStartup) atStartup++;
      // A start that failed because a dependency was down is what `npm start` restarts; a running process must outlive the outage.
      exitRow.ok(e.atStartup && inWindow(e.at), () => `${name} exited ${e.atStartup ? 'while starting' : `after running ${(e.ranMs / 1000).toFixed(1)} s`} (code ${e.code}, signal ${e.signal}) at ${new Date(e.at).toISOString()}: ${e.tail.replace(/\s+/g, ' ').slice(-300)}`);
    }
  }
  exitRow.note = `${atStartup} failed starts during outages, restarted`;

  // --- recovery ---------------------------------------------------------------------------
  const recRow = row('recovery: within target (API 5 s, partitions 10 s) unless another outage overlapped');
  recRow.kind = 'target';
  for (const f of faults) {
    for (const r of f.recoveries) {
      if (r.targetMs === null) continue;
      const to = r.doneAt ?? f.restoredAt + 120_000;
      const others = confounders(faults, f, f.startedAt, to);
      if (others.length > 0) continue;
      recRow.ok(r.ms !== null && r.ms <= r.targetMs, () => `${f.kind}: ${r.what} after ${r.ms === null ? 'never' : `${(r.ms / 1000).toFixed(1)} s`} (target ${r.targetMs! / 1000} s)`);
    }
  }
  const faultErrors = row('faults: every fault injected as planned');
  for (const f of faults) faultErrors.ok(!f.error, () => `${f.kind}: ${f.error}`);
  return rows;
}

function describeAttempt(a: Attempt): string {
  return `${a.route} ${a.status}${a.code ? ` ${a.code}` : ''} at ${new Date(a.at).toISOString()} (instance ${a.instance + 1}, ${a.ms} ms)`;
}

async function runTool(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => { output = (output + b.toString()).slice(-20_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { code, output };
}

/** Per request kind: its attempts by answer (a retried request has several). */
export function routeTable(client: ChaosClient): string {
  const cols = ['2xx', '4xx', '503', '500', 'timeout', 'no connection'] as const;
  const by = new Map<string, Record<(typeof cols)[number], number>>();
  for (const a of client.attempts) {
    const r = by.get(a.route) ?? { '2xx': 0, '4xx': 0, '503': 0, '500': 0, timeout: 0, 'no connection': 0 };
    const col = a.status === 'timeout' ? 'timeout' : a.status === 'conn' ? 'no connection' : a.status === 503 ? '503' : a.status >= 500 ? '500' : a.status >= 400 ? '4xx' : '2xx';
    r[col]++;
    by.set(a.route, r);
  }
  const lines = [`| request | ${cols.join(' | ')} |`, `| --- |${cols.map(() => ' ---: |').join('')}`];
  for (const [route, r] of [...by].sort()) lines.push(`| ${route} | ${cols.map((c) => r[c]).join(' | ')} |`);
  return lines.join('\n');
}

/** The checks as a table (markdown, so it reads the same in a terminal and in docs). */
export function checksTable(rows: CheckRow[]): string {
  const lines = ['| check | checked | discrepancies |', '| --- | ---: | ---: |'];
  for (const r of rows) lines.push(`| ${r.check}${r.note ? ` (${r.note})` : ''} | ${r.checked} | ${r.kind === 'target' ? `${r.bad} missed (target)` : r.bad} |`);
  const examples = rows.filter((r) => r.bad > 0).flatMap((r) => [`\n${r.check}:`, ...r.examples.map((e) => `  - ${e}`)]);
  return lines.join('\n') + (examples.length ? `\n${examples.join('\n')}` : '');
}

/**
 * Per fault kind: how often, and the recovery times measured after it. "clean" are the
 * measurements no other outage overlapped (those are held to the target); the others are
 * counted apart.
 */
export function recoveryTable(faults: FaultRecord[]): string {
  const lines = ['| fault | times | longest down (s) | recovery measured | clean: min / median / max (s) | overlapped by another outage: max (s) | target |', '| --- | ---: | ---: | --- | --- | --- | --- |'];
  const kinds = [...new Set(faults.map((f) => f.kind))].sort();
  const s = (ms: number) => (ms / 1000).toFixed(1);
  const stats = (ms: (number | null)[]) => {
    const got = ms.flatMap((m) => (m === null ? [] : [m])).sort((a, b) => a - b);
    const never = ms.length - got.length;
    if (got.length === 0) return never ? `never (${never})` : '—';
    return `${s(got[0]!)} / ${s(got[Math.floor((got.length - 1) / 2)]!)} / ${s(got.at(-1)!)}${never ? ` (${never} never)` : ''}`;
  };
  for (const kind of kinds) {
    const fs = faults.filter((f) => f.kind === kind);
    const down = Math.max(...fs.map((f) => f.restoredAt - f.startedAt));
    const whats = [...new Set(fs.flatMap((f) => f.recoveries.map((r) => r.what)))];
    for (const what of whats) {
      const clean: (number | null)[] = [];
      const overlapped: (number | null)[] = [];
      let target: number | null = null;
      for (const f of fs) {
        for (const r of f.recoveries.filter((x) => x.what === what)) {
          target = r.targetMs;
          (confounders(faults, f, f.startedAt, r.doneAt ?? f.restoredAt + 120_000).length ? overlapped : clean).push(r.ms);
        }
      }
      const worst = overlapped.some((m) => m === null) ? 'never' : overlapped.length ? `${s(Math.max(...(overlapped as number[])))} (${overlapped.length})` : '—';
      lines.push(`| ${kind} | ${fs.length} | ${s(down)} | ${what} | ${stats(clean)} | ${worst} | ${target ? `${target / 1000} s` : '—'} |`);
    }
  }
  return lines.join('\n');
}

export type { ProcessName };
