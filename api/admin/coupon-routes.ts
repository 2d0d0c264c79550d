import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../errors.ts';
import type { CouponCatalog } from '../../infra/coupon-catalog.ts';
import type { CouponReader } from '../../projections/coupon-reader.ts';
import type { CouponTemplate, GiftPack } from '../../domain/coupons.ts';
import { giftPackSchema, templateSchema } from '../coupons/schemas.ts';

/** Coupon templates (stock), gift packs, and per-template consumption from the projection. */
export const couponAdminRoutes: FastifyPluginAsync<{ catalog: CouponCatalog; reader: CouponReader }> = async (app, { catalog, reader }) => {
  app.put<{ Params: { templateId: string }; Body: Omit<CouponTemplate, 'templateId'> }>(
    '/v1/admin/coupon-templates/:templateId', { schema: templateSchema },
    async (req) => {
      const r = await catalog.putTemplate({ ...req.body, lowStockPercent: req.body.lowStockPercent ?? null, templateId: req.params.templateId }, 'admin');
      if ('refused' in r) throw new ApiError(r.refused.status, r.refused.code, r.refused.message, r.refused.details);
      return r.template;
    },
  );

  app.get<{ Params: { templateId: string } }>('/v1/admin/coupon-templates/:templateId', { schema: { params: templateSchema.params } }, async (req) => {
    const t = await catalog.template(req.params.templateId);
    if (!t) throw new ApiError(404, 'TEMPLATE_NOT_FOUND', `There is no coupon template "${req.params.templateId}".`);
    return t;
  });

  app.put<{ Params: { packId: string }; Body: Omit<GiftPack, 'packId'> }>('/v1/admin/gift-packs/:packId', { schema: giftPackSchema }, async (req) => {
    const r = await catalog.putPack({ ...req.body, packId: req.params.packId }, 'admin');
    if ('refused' in r) throw new ApiError(r.refused.status, r.refused.code, r.refused.message, r.refused.details);
    return r.pack;
  });

  app.get<{ Params: { packId: string } }>('/v1/admin/gift-packs/:packId', { schema: { params: giftPackSchema.params } }, async (req) => {
    const p = await catalog.pack(req.params.packId);
    if (!p) throw new ApiError(404, 'PACK_NOT_FOUND', `There is no gift pack "${req.params.packId}".`);
    return p;
  });

  app.get('/v1/admin/coupon-consumption', async () => ({ templates: await reader.consumption() }));
};
