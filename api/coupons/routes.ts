import type { FastifyPluginAsync } from 'fastify';
import { upstreamAudit } from '../auth/upstream-plugin.ts';
import { ApiError } from '../errors.ts';
import { directGrantRejection } from '../../domain/grants.ts';
import type { ActivityCatalog } from '../../infra/activities.ts';
import { couponOf, couponStateOf, packStatusOf, type Platform } from '../../domain/coupons.ts';
import type { CommandResult, CouponCommands, GrantCommand } from '../../infra/coupon-store.ts';
import { packView } from '../../projections/coupon-reader.ts';
import { freezeSchema, packGrantSchema, redeemSchema, unfreezeSchema } from './schemas.ts';

type HoldBody = { userId: string; couponId: string; paymentId: string };

/** A refused command as an answer; the refusal's code is the machine-readable one. */
export function accepted(result: CommandResult): Extract<CommandResult, { ok: true }> {
  if (!result.ok) throw new ApiError(result.status, result.refusal.code, result.refusal.message, result.refusal.details);
  return result;
}

function holdAnswer(result: Extract<CommandResult, { ok: true }>, paymentId: string, now: number) {
  const r = result.record;
  const c = couponOf(r, result.couponId!)!;
  const slot = r.slots.find((s) => s.slot === c.slot)!;
  const state = couponStateOf(r, c, now);
  return {
    couponId: c.couponId, grantId: r.grantId, paymentId, state, packStatus: packStatusOf(r),
    ...(state === 'frozen' ? { frozenUntil: new Date(slot.frozenUntil!).toISOString() } : {}),
  };
}

/**
 * Upstream services: activity services grant packs; the payment service freezes a coupon
 * when a payment starts, unfreezes it when the payment is abandoned, and redeems it when
 * the payment completes. All are signed requests (auth/upstream-plugin.ts).
 */
export const couponRoutes: FastifyPluginAsync<{ commands: CouponCommands; activities: ActivityCatalog; holdDefaultMs: number; holdMaxMs: number }> =
  async (app, { commands, activities, holdDefaultMs, holdMaxMs }) => {
  app.post<{ Body: GrantCommand }>('/v1/gift-packs/grants', { schema: packGrantSchema }, async (req, reply) => {
    // Every grant is attributed to an activity operators know of, as cash grants are, and under the same rules.
    const terms = await activities.get(req.body.activityId);
    if (!terms) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no activity "${req.body.activityId}".`);
    const rejection = directGrantRejection(req.body.orderNo, terms);
    if (rejection) throw new ApiError(422, rejection.code, `${rejection.message[0]!.toUpperCase()}${rejection.message.slice(1)}.`);
    const r = accepted(await commands.grant(req.body, upstreamAudit(req)));
    const stock = r.stock ?? [];
    if (r.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(r.replayed ? 200 : 201).send({
      grantId: r.record.grantId, userId: r.record.userId, orderNo: r.record.orderNo, pack: packView(r.record, Date.now()),
      stock, lowStock: stock.some((s) => s.lowStock),
    });
  });

  app.post<{ Body: HoldBody & { platform: Platform; holdSeconds?: number } }>('/v1/coupons/freeze', { schema: freezeSchema }, async (req) => {
    const holdMs = req.body.holdSeconds === undefined ? holdDefaultMs : Math.min(req.body.holdSeconds * 1000, holdMaxMs);
    const r = accepted(await commands.freeze({ ...req.body, holdMs }));
    return holdAnswer(r, req.body.paymentId, Date.now());
  });

  app.post<{ Body: HoldBody }>('/v1/coupons/unfreeze', { schema: unfreezeSchema }, async (req) => {
    const r = accepted(await commands.unfreeze(req.body));
    return { ...holdAnswer({ ...r, couponId: r.couponId ?? req.body.couponId }, req.body.paymentId, Date.now()) };
  });

  app.post<{ Body: HoldBody }>('/v1/coupons/redeem', { schema: redeemSchema }, async (req) => {
    const r = accepted(await commands.redeem(req.body));
    return holdAnswer(r, req.body.paymentId, Date.now());
  });
};
