import type pg from 'pg';
import type { Redis } from 'ioredis';
import { couponStateOf, packStatusOf, type CouponState, type PackRecord, type PackStatus, type Platform } from '../domain/coupons.ts';

export interface WalletCoupon {
  couponId: string; templateId: string; slot: string; platform: Platform; faceValue: number; currency: string; expiresAt: string; state: CouponState;
}
export interface WalletPack {
  grantId: string; packId: string; activityId: string; platform: Platform; status: PackStatus; grantedAt: string; claimedAt: string | null; coupons: WalletCoupon[];
}
export interface WalletCouponsView {
  userId: string;
  packs: WalletPack[];
  /** When the view was read from the projection. */
  asOf: string;
  /** True when the projection did not answer in time and this is the last view read. */
  degraded: boolean;
}

export interface TemplateConsumption {
  templateId: string; platform: string; totalStock: number; issued: number; frozen: number; redeemed: number; remaining: number;
}

export class CouponsUnavailable extends Error {}

/**
 * Reads coupon projections for the wallet. The coupon list is not on the cash path, so it
 * must never take the wallet page down: the projection gets `timeoutMs`, and when it does not
 * answer in time (or fails) the user sees the last view read, marked degraded. Views are
 * kept in Redis so every API instance can fall back to them.
 */
export class CouponReader {
  constructor(private readonly pool: pg.Pool, private readonly redis: Redis, private readonly opts: {
    namespace: string; timeoutMs: number; cacheSec: number; now?: () => number;
  }) {}

  private key(userId: string): string {
    return `${this.opts.namespace}:coupon-view:${userId}`;
  }

  async walletView(userId: string): Promise<WalletCouponsView> {
    let records: PackRecord[];
    try {
      records = await this.packsOf(userId);
    } catch (err) {
      const cached = await this.redis.get(this.key(userId)).catch(() => null);
      if (cached === null) throw new CouponsUnavailable((err as Error).message);
      return { ...(JSON.parse(cached) as WalletCouponsView), degraded: true };
    }
    const now = (this.opts.now ?? Date.now)();
    const view: WalletCouponsView = { userId, packs: records.map((r) => packView(r, now)), asOf: new Date(now).toISOString(), degraded: false };
    await this.redis.set(this.key(userId), JSON.stringify(view), 'EX', this.opts.cacheSec).catch(() => {});
    return view;
  }

  /** The user's packs, newest first; bounded by a statement timeout Postgres enforces, and by a client-side one. */
  private async packsOf(userId: string): Promise<PackRecord[]> {
    const work = (async () => {
      const client = await this.pool.connect();
      try {
        await client.query('begin');
        await client.query(`select set_config('statement_timeout', $1, true)`, [String(this.opts.timeoutMs)]);
        const { rows } = await client.query<{ record: PackRecord }>(
          'select record from gift_pack_grants where user_id=$1 order by granted_at desc, grant_id limit 200', [userId],
        );
        await client.query('commit');
        return rows.map((r) => r.record);
      } catch (err) {
        await client.query('rollback').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`coupon projection did not answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs + 50);
    });
    work.catch(() => {}); // a late failure after the timeout has already been answered
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async consumption(templateIds?: string[]): Promise<TemplateConsumption[]> {
    const { rows } = await this.pool.query(
      `select t.template_id, t.platform, t.total_stock, coalesce(c.issued, 0) as issued, coalesce(c.frozen, 0) as frozen, coalesce(c.redeemed, 0) as redeemed
         from coupon_templates t left join coupon_consumption c using (template_id)
        where $1::text[] is null or t.template_id = any($1::text[]) order by t.template_id`,
      [templateIds ?? null],
    );
    return rows.map((r) => ({
      templateId: r.template_id, platform: r.platform, totalStock: Number(r.total_stock), issued: Number(r.issued), frozen: Number(r.frozen),
      redeemed: Number(r.redeemed), remaining: Number(r.total_stock) - Number(r.issued),
    }));
  }
}

export function packView(r: PackRecord, now: number): WalletPack {
  return {
    grantId: r.grantId, packId: r.packId, activityId: r.activityId, platform: r.platform, status: packStatusOf(r),
    grantedAt: new Date(r.grantedAt).toISOString(), claimedAt: r.claimedAt === null ? null : new Date(r.claimedAt).toISOString(),
    coupons: r.coupons.map((c) => ({
      couponId: c.couponId, templateId: c.templateId, slot: c.slot, platform: c.platform, faceValue: c.faceValue, currency: c.currency,
      expiresAt: new Date(c.expiresAt).toISOString(), state: couponStateOf(r, c, now),
    })),
  };
}
