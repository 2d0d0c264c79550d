// The festival campaign's load: signed grants (with retries of the same order numbers and a
// few the ledger must refuse), lottery draws (retried draw ids), withdrawals (retried and
// double-clicked Idempotency-Keys), red packets with racing grabs and short expiries, coupon
// gift packs from a small stock, fundings re-posted, wallet reads. The workload is drawn from
// a seeded PRNG. Every answer goes into the client's own book, which the checks compare
// with the ledger afterwards.
import { seeded } from '../helpers/campaigns.ts';
import type { Answer, ChaosClient } from './client.ts';
import type { Cluster } from './cluster.ts';

export const CURRENCY = 'CNY';
export const GRANT_ACTIVITIES = ['rain-1', 'rain-2', 'rain-3'];
export const MAX_SINGLE_GRANT = 500;
export const CAMPAIGN = 'shake';
export const CHILD_ACTIVITY = `${CAMPAIGN}:formal`;
export const COUPON_ACTIVITY = 'coupon-gifts';
export const PACK = 'festival-pack';
export const SLOTS = [['five', 500], ['ten', 1000]] as const;
export const PLATFORMS = ['ios', 'android'] as const;
/** How long a coupon is held by a payment in the campaign: an abandoned one is unfrozen by the coupon keeper soon after. */
export const HOLD_SECONDS = 2;
export const templateOf = (platform: string, slot: string) => `${PACK}.${platform}.${slot}`;

/** One request of the book: what was asked and what came back (null: no final answer). */
export interface Sent { sentAt: number; answer: Answer | null }

/** Everything sent under one idempotency key. */
export interface Rec<T> { key: string; intent: T; sent: Sent[] }

export interface GrantIntent { activityId: string; orderNo: string; userId: string; amount: number; sceneId: string }
export interface DrawIntent { drawId: string; userId: string }
export interface WithdrawalIntent { userId: string; key: string; amount: number }
export interface PacketIntent { senderId: string; key: string; amount: number; count: number; expirySeconds: number }
export interface GrabIntent { packetId: string; userId: string; expiresAt: number; late: boolean }
export interface CouponIntent { orderNo: string; userId: string; platform: 'ios' | 'android' }
export interface FundingIntent { activityId: string; fundingId: string; amount: number }
/** A payment using a coupon of a granted pack: claim the pack, freeze the coupon (a short hold), then redeem it or walk away. */
export interface CouponUseIntent { paymentId: string; userId: string; grantId: string; couponId: string; templateId: string; platform: string; redeem: boolean }
export interface CouponUse { intent: CouponUseIntent; claim: Rec<CouponUseIntent>; freeze: Rec<CouponUseIntent>; redeem: Rec<CouponUseIntent> | null }

export interface Sizing {
  users: number;
  grantBudget: number;
  topUp: number;
  childBudget: number;
  quotas: { small: number; big: number };
  couponStock: number;
}

export const PRIZES = { small: { prizeId: 'cash-small', amount: 30, weight: 30 }, big: { prizeId: 'cash-big', amount: 300, weight: 5 }, noWinWeight: 65 };

export class Book {
  readonly fundings = new Map<string, Rec<FundingIntent>>();
  readonly grants = new Map<string, Rec<GrantIntent>>();
  /** Order numbers the ledger accepted, sent again with another amount: each must be refused. */
  readonly grantConflicts = new Map<string, Rec<GrantIntent>>();
  readonly draws = new Map<string, Rec<DrawIntent>>();
  readonly withdrawals = new Map<string, Rec<WithdrawalIntent>>();
  readonly packets = new Map<string, Rec<PacketIntent>>();
  readonly grabs = new Map<string, Rec<GrabIntent>>();
  readonly coupons = new Map<string, Rec<CouponIntent>>();
  readonly couponUses: CouponUse[] = [];
  readonly reads: Sent[] = [];
  users: string[] = [];
  sizing!: Sizing;
  /** Operations skipped because too many requests were in flight (the campaign is open-loop, bounded). */
  skipped = 0;
  ops: Record<string, number> = {};
}

/** The first final 2xx answer of a key (the one the book keeps), or null. */
export function firstOk<T>(rec: Rec<T>): Answer | null {
  let best: Answer | null = null;
  for (const s of rec.sent) {
    const a = s.answer;
    if (a && a.status < 300 && (!best || a.answeredAt < best.answeredAt)) best = a;
  }
  return best;
}

export function sizingFor(rate: number, loadMs: number): Sizing {
  const ops = Math.max(200, Math.round((rate * loadMs) / 1000));
  const grants = ops * 0.34;
  const draws = ops * 0.17;
  const coupons = ops * 0.12;
  // Budgets cover about 60% of what is asked (some grants are refused for budget until the top-up, and after).
  const grantBudget = Math.round((grants * 250 * 0.6) / GRANT_ACTIVITIES.length);
  return {
    users: Math.max(24, Math.round(ops / 30)),
    grantBudget,
    topUp: Math.round(grantBudget * 0.25),
    quotas: { small: Math.max(5, Math.round(draws * 0.3 * 0.7)), big: Math.max(2, Math.round(draws * 0.05 * 0.7)) },
    childBudget: Math.round(draws * (0.3 * 30 + 0.05 * 300) * 0.6),
    couponStock: Math.max(4, Math.round((coupons / 2) * 0.7)),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Activities, fundings, the lottery campaign and the coupon catalog, through the admin API. */
export async function setUpCampaign(c: Cluster, client: ChaosClient, book: Book, sizing: Sizing): Promise<void> {
  book.sizing = sizing;
  book.users = Array.from({ length: sizing.users }, (_, i) => `u${String(i).padStart(3, '0')}`);
  const admin = async (path: string, body: unknown, method: 'PUT' | 'POST' = 'PUT') => {
    const a = await client.send('admin', path, method, path, body, { kind: 'admin' });
    if (!a || a.status >= 300) throw new Error(`setup ${method} ${path}: ${a?.status} ${JSON.stringify(a?.body)}`);
    return a;
  };
  for (const id of [...GRANT_ACTIVITIES, COUPON_ACTIVITY]) {
    await admin(`/v1/admin/activities/${id}`, { name: `Chaos ${id}`, currency: CURRENCY, maxSingleGrant: MAX_SINGLE_GRANT });
  }
  for (const id of GRANT_ACTIVITIES) await fund(client, book, id, 'initial', sizing.grantBudget);
  const now = Date.now();
  await admin(`/v1/admin/campaigns/${CAMPAIGN}/config`, {
    activityId: CAMPAIGN, name: 'Chaos shake', currency: CURRENCY,
    children: [{
      childId: 'formal', stage: 'formal', startsAt: new Date(now - 60_000).toISOString(), endsAt: new Date(now + 86_400_000).toISOString(),
      scenes: [{
        sceneId: 'shake', awardType: 'cash', statementText: 'Chaos shake', stockControl: true, reconcile: true,
        pool: {
          poolId: 'main', noWinWeight: PRIZES.noWinWeight,
          prizes: [
            { prizeId: PRIZES.small.prizeId, name: '0.30 CNY', weight: PRIZES.small.weight, quota: sizing.quotas.small, amount: PRIZES.small.amount },
            { prizeId: PRIZES.big.prizeId, name: '3.00 CNY', weight: PRIZES.big.weight, quota: sizing.quotas.big, amount: PRIZES.big.amount },
          ],
        },
      }],
    }],
  });
  await fund(client, book, CHILD_ACTIVITY, 'initial', sizing.childBudget);
  for (const [slot, faceValue] of SLOTS) {
    for (const platform of PLATFORMS) {
      await admin(`/v1/admin/coupon-templates/${templateOf(platform, slot)}`, { platform, faceValue, currency: CURRENCY, validDays: 30, totalStock: sizing.couponStock });
    }
  }
  await admin(`/v1/admin/gift-packs/${PACK}`, { name: 'Festival pack', slots: SLOTS.map(([slot]) => ({ slot, ios: templateOf('ios', slot), android: templateOf('android', slot) })) });
  // Every API instance has the campaign before the first draw.
  await sleep(Number(c.env.CAMPAIGN_POLL_MS) + 500);
}

async function fund(client: ChaosClient, book: Book, activityId: string, fundingId: string, amount: number): Promise<void> {
  const key = `${activityId}/${fundingId}`;
  const rec = book.fundings.get(key) ?? { key, intent: { activityId, fundingId, amount }, sent: [] };
  book.fundings.set(key, rec);
  const path = `/v1/admin/activities/${activityId}/fundings`;
  const sentAt = Date.now();
  const answer = await client.send('funding', key, 'POST', path, { fundingId, amount, currency: CURRENCY }, { kind: 'admin' });
  rec.sent.push({ sentAt, answer });
}

export interface LoadOptions { rate: number; loadMs: number; seed: number; maxInFlight: number; log(s: string): void }

/**
 * Runs the open-loop load for loadMs at `rate` operations a second, then waits for every
 * request it started (and the red-packet grabs it scheduled) to get its final answer.
 */
export async function runLoad(client: ChaosClient, book: Book, o: LoadOptions): Promise<void> {
  const rng = seeded(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
  const chance = (p: number) => rng() < p;
  const between = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    const q = p.catch((err) => o.log(`operation failed in the client: ${(err as Error).stack ?? err}`)).finally(() => pending.delete(q));
    pending.add(q);
  };
  let seq = 0;
  const count = (op: string) => { book.ops[op] = (book.ops[op] ?? 0) + 1; };
  // What the book knows a user has (grants, wins, shares answered 2xx, less withdrawals and packets): only to choose amounts.
  const est = new Map<string, number>();
  const add = (u: string, n: number) => est.set(u, (est.get(u) ?? 0) + n);
  const richUser = () => {
    for (let i = 0; i < 5; i++) {
      const u = pick(book.users);
      if ((est.get(u) ?? 0) > 50) return u;
    }
    return pick(book.users);
  };
  /** Sends under a key and files the answer in rec. */
  const send = async <T>(rec: Rec<T>, route: string, method: 'GET' | 'POST', path: string, body: unknown, auth: Parameters<ChaosClient['send']>[5], headers: Record<string, string> = {}) => {
    const s: Sent = { sentAt: Date.now(), answer: null };
    rec.sent.push(s);
    s.answer = await client.send(route, rec.key, method, path, body, auth, headers);
    return s.answer;
  };
  const answered = <T>(m: Map<string, Rec<T>>) => [...m.values()].filter((r) => r.sent.some((s) => s.answer));

  const grant = (intent: GrantIntent) => {
    const key = `${intent.activityId}/${intent.orderNo}`;
    const rec = book.grants.get(key) ?? { key, intent, sent: [] };
    book.grants.set(key, rec);
    return send(rec, 'grant', 'POST', '/v1/grants', { ...intent, currency: CURRENCY }, { kind: 'upstream' }).then((a) => {
      if (a && a.status === 201 && !a.replayed) add(intent.userId, intent.amount);
    });
  };
  const draw = (rec: Rec<DrawIntent>) =>
    send(rec, 'draw', 'POST', '/v1/draws', { activityId: CAMPAIGN, sceneId: 'shake', userId: rec.intent.userId, drawId: rec.intent.drawId }, { kind: 'upstream' }).then((a) => {
      if (a && a.status === 201 && a.body?.outcome === 'won') add(rec.intent.userId, a.body.prize?.amount ?? 0);
    });
  const withdraw = (rec: Rec<WithdrawalIntent>) =>
    send(rec, 'withdrawal', 'POST', `/v1/wallets/${rec.intent.userId}/withdrawals`, { amount: rec.intent.amount, currency: CURRENCY },
      { kind: 'user', userId: rec.intent.userId }, { 'idempotency-key': rec.intent.key });
  const createPacket = (rec: Rec<PacketIntent>) => {
    const i = rec.intent;
    return send(rec, 'packet', 'POST', '/v1/packets', { amount: i.amount, currency: CURRENCY, count: i.count, expirySeconds: i.expirySeconds },
      { kind: 'user', userId: i.senderId }, { 'idempotency-key': i.key });
  };
  const grab = (packetId: string, userId: string, expiresAt: number, late: boolean) => {
    const key = `${packetId}/${userId}`;
    const rec = book.grabs.get(key) ?? { key, intent: { packetId, userId, expiresAt, late }, sent: [] };
    book.grabs.set(key, rec);
    return send(rec, 'grab', 'POST', `/v1/packets/${packetId}/grab`, undefined, { kind: 'user', userId }).then((a) => {
      if (a && a.status === 201) add(userId, a.body?.amount ?? 0);
      return a;
    });
  };
  const coupon = (rec: Rec<CouponIntent>) =>
    send(rec, 'coupon', 'POST', '/v1/gift-packs/grants', { activityId: COUPON_ACTIVITY, orderNo: rec.intent.orderNo, userId: rec.intent.userId, packId: PACK, platform: rec.intent.platform }, { kind: 'upstream' });

  const operation = () => {
    const r = rng();
    const n = seq++;
    if (r < 0.27) {
      count('grant');
      track(grant({ activityId: pick(GRANT_ACTIVITIES), orderNo: `o-${n}`, userId: pick(book.users), amount: between(1, 400), sceneId: 'rain' }));
    } else if (r < 0.33) {
      // A retry of an order number already answered: the same body, long after.
      const prior = answered(book.grants);
      if (prior.length === 0) return;
      count('grant-retry');
      track(grant(pick(prior).intent));
    } else if (r < 0.35) {
      // Refused grants: over the cap, or an order number reused for another amount. They must move nothing.
      count('grant-refused');
      const prior = answered(book.grants);
      if (chance(0.5) || prior.length === 0) {
        track(grant({ activityId: pick(GRANT_ACTIVITIES), orderNo: `o-${n}-cap`, userId: pick(book.users), amount: MAX_SINGLE_GRANT + between(1, 100), sceneId: 'rain' }));
      } else {
        // Only an order number the ledger accepted is "used": another amount under it must be ORDER_CONFLICT.
        const used = prior.filter((g) => firstOk(g));
        if (used.length === 0) return;
        const p = pick(used).intent;
        const other: Rec<GrantIntent> = { key: `${p.activityId}/${p.orderNo}#conflict-${n}`, intent: { ...p, amount: p.amount + 1 }, sent: [] };
        book.grantConflicts.set(other.key, other);
        track(send(other, 'grant', 'POST', '/v1/grants', { ...other.intent, currency: CURRENCY }, { kind: 'upstream' }));
      }
    } else if (r < 0.49) {
      count('draw');
      const rec: Rec<DrawIntent> = { key: `d-${n}`, intent: { drawId: `d-${n}`, userId: pick(book.users) }, sent: [] };
      book.draws.set(rec.key, rec);
      track(draw(rec));
    } else if (r < 0.53) {
      const prior = answered(book.draws);
      if (prior.length === 0) return;
      count('draw-retry');
      track(draw(pick(prior)));
    } else if (r < 0.61) {
      const u = richUser();
      const have = est.get(u) ?? 0;
      count('withdrawal');
      const rec: Rec<WithdrawalIntent> = { key: `${u}/w-${n}`, intent: { userId: u, key: `chaos-w-${n}`, amount: Math.max(1, Math.round(have * (0.2 + rng() * 0.9))) }, sent: [] };
      book.withdrawals.set(rec.key, rec);
      const double = chance(0.15);
      track(withdraw(rec).then((a) => { if (a && a.status === 201) add(u, -rec.intent.amount); }));
      // A double click: the same key at once.
      if (double) { count('withdrawal-double'); track(withdraw(rec)); }
    } else if (r < 0.64) {
      const prior = answered(book.withdrawals);
      if (prior.length === 0) return;
      count('withdrawal-retry');
      track(withdraw(pick(prior)));
    } else if (r < 0.69) {
      const sender = richUser();
      const have = est.get(sender) ?? 0;
      const cnt = between(2, 5);
      const amount = Math.max(cnt, Math.round(have * (0.1 + rng() * 0.5)));
      const expirySeconds = between(5, 10);
      count('packet');
      const rec: Rec<PacketIntent> = { key: `${sender}/p-${n}`, intent: { senderId: sender, key: `chaos-p-${n}`, amount, count: cnt, expirySeconds }, sent: [] };
      book.packets.set(rec.key, rec);
      // The grabs are planned now (seeded): more grabbers than shares, racing; some grab again; one comes after expiry.
      const others = book.users.filter((u) => u !== sender);
      const grabbers = Array.from({ length: cnt + between(1, 2) }, () => pick(others)).filter((u, i, all) => all.indexOf(u) === i);
      const delays = grabbers.map(() => between(0, 1_500));
      const again = grabbers.map(() => chance(0.25));
      const lateUser = pick(others);
      const dupe = chance(0.1);
      track(createPacket(rec).then(async (a) => {
        if (dupe) { count('packet-retry'); await createPacket(rec); }
        if (!a || a.status !== 201) return;
        add(sender, -amount);
        const packetId = a.body.packetId as string;
        const expiresAt = Date.parse(a.body.expiresAt);
        await Promise.all(grabbers.map(async (u, i) => {
          await sleep(delays[i]!);
          count('grab');
          const first = await grab(packetId, u, expiresAt, false);
          if (again[i] && first && Date.now() < expiresAt - 1_500) {
            await sleep(Math.min(500, expiresAt - Date.now() - 1_500));
            count('grab-retry');
            await grab(packetId, u, expiresAt, false);
          }
        }));
        await sleep(Math.max(0, expiresAt + 1_500 - Date.now()));
        count('grab-late');
        const key = `${packetId}/${lateUser}`;
        if (!book.grabs.has(key)) await grab(packetId, lateUser, expiresAt, true);
      }));
    } else if (r < 0.80) {
      count('coupon');
      const rec: Rec<CouponIntent> = { key: `c-${n}`, intent: { orderNo: `c-${n}`, userId: pick(book.users), platform: pick(PLATFORMS) }, sent: [] };
      book.coupons.set(rec.key, rec);
      const use = chance(0.5);
      const redeem = chance(0.5);
      track(coupon(rec).then(async (a) => {
        if (!use || !a || a.status !== 201) return;
        count(redeem ? 'coupon-redeem' : 'coupon-abandon');
        const c0 = a.body.pack.coupons[0];
        const intent: CouponUseIntent = {
          paymentId: `pay-${n}`, userId: rec.intent.userId, grantId: a.body.grantId, couponId: c0.couponId, templateId: c0.templateId, platform: rec.intent.platform, redeem,
        };
        const u: CouponUse = { intent, claim: { key: `${intent.paymentId}/claim`, intent, sent: [] }, freeze: { key: `${intent.paymentId}/freeze`, intent, sent: [] }, redeem: null };
        book.couponUses.push(u);
        const claimed = await send(u.claim, 'coupon-claim', 'POST', `/v1/wallets/${intent.userId}/gift-packs/${intent.grantId}/claim`, undefined, { kind: 'user', userId: intent.userId });
        if (!claimed || claimed.status !== 200) return;
        const hold = { userId: intent.userId, couponId: intent.couponId, paymentId: intent.paymentId };
        const frozen = await send(u.freeze, 'coupon-freeze', 'POST', '/v1/coupons/freeze', { ...hold, platform: intent.platform, holdSeconds: HOLD_SECONDS }, { kind: 'upstream' });
        if (!frozen || frozen.status !== 200 || !redeem) return;
        await sleep(300);
        u.redeem = { key: `${intent.paymentId}/redeem`, intent, sent: [] };
        await send(u.redeem, 'coupon-redeem', 'POST', '/v1/coupons/redeem', hold, { kind: 'upstream' });
      }));
    } else if (r < 0.84) {
      const prior = answered(book.coupons);
      if (prior.length === 0) return;
      count('coupon-retry');
      track(coupon(pick(prior)));
    } else if (r < 0.85) {
      // A funding re-posted (its id adds once); the top-up is posted again later too.
      count('funding');
      const id = pick(GRANT_ACTIVITIES);
      track(chance(0.5) ? fund(client, book, id, 'initial', book.sizing.grantBudget) : fund(client, book, id, 'top-up', book.sizing.topUp));
    } else {
      count('read');
      const u = pick(book.users);
      const s: Sent = { sentAt: Date.now(), answer: null };
      book.reads.push(s);
      track(client.send('read', u, 'GET', `/v1/wallets/${u}`, undefined, { kind: 'user', userId: u }).then((a) => { s.answer = a; }));
    }
  };

  const start = Date.now();
  const interval = 1_000 / o.rate;
  let nextProgress = start + 15_000;
  for (let i = 0; ; i++) {
    const due = start + i * interval;
    if (due >= start + o.loadMs) break;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    if (client.inFlight >= o.maxInFlight) { book.skipped++; continue; }
    operation();
    if (Date.now() >= nextProgress) {
      nextProgress += 15_000;
      o.log(`load: ${Math.round((Date.now() - start) / 1000)} s, ${seq} operations, ${client.inFlight} requests in flight`);
    }
  }
  o.log(`load done: ${seq} operations in ${Math.round((Date.now() - start) / 1000)} s; waiting for ${pending.size} to be answered`);
  while (pending.size > 0) await Promise.all([...pending]);
}
