import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../errors.ts';
import type { CouponCommands } from '../../infra/coupon-store.ts';
import { CouponsUnavailable, packView, type CouponReader } from '../../projections/coupon-reader.ts';
import { accepted } from './routes.ts';
import { claimSchema, walletCouponsSchema } from './schemas.ts';

/** The wallet's coupon page: the user's own packs and coupons, and claiming a pack. */
export const walletCouponRoutes: FastifyPluginAsync<{ commands: CouponCommands; reader: CouponReader }> = async (app, { commands, reader }) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), userAuth: true };
  });

  app.get<{ Params: { userId: string } }>('/v1/wallets/:userId/coupons', { schema: walletCouponsSchema }, async (req, reply) => {
    try {
      const view = await reader.walletView(req.params.userId);
      if (view.degraded) void reply.header('warning', '110 - "coupon list from cache: the ledger did not answer in time"');
      return view;
    } catch (err) {
      if (err instanceof CouponsUnavailable) {
        throw new ApiError(503, 'COUPONS_UNAVAILABLE', 'Your coupons cannot be shown right now; try again in a moment.', { retryAfterMs: 2000 });
      }
      throw err;
    }
  });

  app.post<{ Params: { userId: string; grantId: string } }>('/v1/wallets/:userId/gift-packs/:grantId/claim', { schema: claimSchema }, async (req) => {
    const r = accepted(await commands.claim(req.params.userId, req.params.grantId));
    return packView(r.record, Date.now());
  });
};
