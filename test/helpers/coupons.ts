import type { TestLedger } from './ledger.ts';
import { kafkaClient } from '../../infra/kafka.ts';
import { replayTopics } from '../../reconcile/replay.ts';
import type { LedgerEvent } from '../../domain/events.ts';
import type { Platform } from '../../domain/coupons.ts';

/** A gift pack of three face values, each with an iOS and an Android template of the given stock. */
export async function spendPack(l: TestLedger, opts: { packId?: string; stock?: number; iosStock?: number; lowStockPercent?: number | null } = {}) {
  const packId = opts.packId ?? 'spring-pack';
  // The activity grants are attributed to (grantPack's default).
  const a = await l.admin('PUT', '/v1/admin/activities/spring', { name: 'Spring', currency: 'CNY', maxSingleGrant: 20_000 });
  if (a.statusCode !== 200) throw new Error(`activity setup failed: ${JSON.stringify(a.json)}`);
  const slots = [['five', 500], ['ten', 1000], ['twenty', 2000]] as const;
  for (const [slot, faceValue] of slots) {
    for (const platform of ['ios', 'android'] as const) {
      const totalStock = platform === 'ios' ? opts.iosStock ?? opts.stock ?? 1000 : opts.stock ?? 1000;
      const res = await l.admin('PUT', `/v1/admin/coupon-templates/${packId}.${platform}.${slot}`, {
        platform, faceValue, currency: 'CNY', validDays: 30, totalStock, ...(opts.lowStockPercent === undefined ? {} : { lowStockPercent: opts.lowStockPercent }),
      });
      if (res.statusCode !== 200) throw new Error(`template setup failed: ${JSON.stringify(res.json)}`);
    }
  }
  const res = await l.admin('PUT', `/v1/admin/gift-packs/${packId}`, {
    name: 'Spring Festival pack', slots: slots.map(([slot]) => ({ slot, ios: `${packId}.ios.${slot}`, android: `${packId}.android.${slot}` })),
  });
  if (res.statusCode !== 200) throw new Error(`pack setup failed: ${JSON.stringify(res.json)}`);
  return packId;
}

export function grantPack(l: TestLedger, body: { orderNo: string; userId: string; packId?: string; platform?: Platform; activityId?: string }) {
  return l.signed('POST', '/v1/gift-packs/grants', { activityId: 'spring', packId: 'spring-pack', platform: 'android', ...body });
}

/** Grants and claims a pack; returns its grant id and coupons. */
export async function claimedPack(l: TestLedger, userId: string, orderNo: string, platform: Platform = 'android') {
  const g = await grantPack(l, { orderNo, userId, platform });
  if (g.statusCode !== 201) throw new Error(`grant failed: ${JSON.stringify(g.json)}`);
  const c = await l.asUser(userId, 'POST', `/v1/wallets/${userId}/gift-packs/${g.json.grantId}/claim`);
  if (c.statusCode !== 200) throw new Error(`claim failed: ${JSON.stringify(c.json)}`);
  return { grantId: g.json.grantId as string, coupons: g.json.pack.coupons as { couponId: string; slot: string; platform: Platform }[] };
}

export const hold = (l: TestLedger, action: 'freeze' | 'unfreeze' | 'redeem', body: Record<string, unknown>) => l.signed('POST', `/v1/coupons/${action}`, body);

/** Every event on the wallet topic, in partition order. */
export async function logOf(l: TestLedger): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = [];
  await replayTopics(kafkaClient(l.rt.cfg, `${l.ns}-log`), l.rt.codec, [l.rt.topics.wallet], (e) => out.push(e));
  return out;
}

/** Per-template consumption from the admin API (the projection). */
export const consumption = async (l: TestLedger) => Object.fromEntries(((await l.admin('GET', '/v1/admin/coupon-consumption')).json.templates as any[]).map((x) => [x.templateId, x]));

/** The projector has applied every coupon event the command side decided: each pack's projected record is the command side's. */
export async function projected(l: TestLedger) {
  await l.waitFor('coupon projection caught up', async () => {
    const { rows } = await l.rt.pool.query(
      `select (select count(*) from journal_outbox)::int as unsent,
              (select count(*) from pack_states s left join gift_pack_grants g using (grant_id) where g.record is distinct from s.record)::int as behind`,
    );
    return rows[0].unsent === 0 && rows[0].behind === 0;
  });
}

