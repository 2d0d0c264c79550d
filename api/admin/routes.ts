import type { FastifyPluginAsync } from 'fastify';
import { randomUUID } from 'node:crypto';
import { fundingEventIdFor } from '../../domain/grants.ts';
import type { ActivityCatalog } from '../../infra/activities.ts';
import type { BudgetStore } from '../../infra/budget.ts';
import type { Journal } from '../../infra/journal.ts';
import { journaled } from '../journaled.ts';
import { ApiError, errorResponse } from '../errors.ts';
import { amount } from '../input.ts';
import { MAX_AMOUNT } from '../../domain/money.ts';
import { signaturesEqual } from '../auth/upstream-signature.ts';
import type { WalletSettingsStore } from '../../infra/wallet-settings.ts';
import type { InvariantReport } from '../../projections/invariants.ts';
import type pg from 'pg';
import { reconciliationRoutes } from './reconciliation-routes.ts';
import { campaignRoutes } from './campaign-routes.ts';
import { couponAdminRoutes } from './coupon-routes.ts';
import type { CouponCatalog } from '../../infra/coupon-catalog.ts';
import type { CouponReader } from '../../projections/coupon-reader.ts';
import type { CampaignCatalog, CampaignStore } from '../../infra/campaign-store.ts';

const idPattern = '^[A-Za-z0-9_.:-]+$';
const activityParams = {
  type: 'object', required: ['activityId'],
  properties: { activityId: { type: 'string', minLength: 1, maxLength: 128, pattern: idPattern } },
} as const;

/**
 * Operator routes: define an activity's terms and fund its budget. Guarded by the admin
 * bearer token. A funding's BudgetFunded event and the budget it adds commit together in the
 * command journal, once per funding id for ever, so the spendable budget never exceeds the
 * ledger's and a funding re-posted at any time adds nothing.
 */
export interface AdminDeps {
  adminToken: string;
  activities: ActivityCatalog;
  budget: BudgetStore;
  journal: Journal;
  settings: WalletSettingsStore;
  invariants(): Promise<InvariantReport>;
  pool: pg.Pool;
  campaigns: { store: CampaignStore; catalog: CampaignCatalog; knownPacks(ids: string[]): Promise<Set<string>> };
  coupons: { catalog: CouponCatalog; reader: CouponReader };
}

export const adminRoutes: FastifyPluginAsync<AdminDeps> =
  async (app, { adminToken, activities, budget, journal, settings, invariants, pool, campaigns, coupons }) => {
    app.addHook('onRequest', async (req) => {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ') || !signaturesEqual(auth.slice(7), adminToken)) {
        throw new ApiError(401, 'ADMIN_AUTH_REQUIRED', 'Send the admin token as "Authorization: Bearer <token>".');
      }
    });

    app.put<{ Params: { activityId: string }; Body: { name: string; currency: string; maxSingleGrant: number } }>(
      '/v1/admin/activities/:activityId',
      {
        schema: {
          params: activityParams,
          body: {
            type: 'object', additionalProperties: false, required: ['name', 'currency', 'maxSingleGrant'],
            properties: {
              name: { type: 'string', minLength: 1, maxLength: 200 },
              currency: { type: 'string', enum: ['CNY'] },
              maxSingleGrant: amount,
            },
          },
          response: { '4xx': errorResponse },
        },
      },
      async (req) => {
        const taken = await activities.put(req.params.activityId, req.body.name, req.body.currency, req.body.maxSingleGrant);
        if (taken) {
          throw new ApiError(409, 'ACTIVITY_RESERVED', `Activity ${req.params.activityId} belongs to lottery campaign "${taken.ownedBy}"; its terms follow the campaign's configuration.`);
        }
        return { activityId: req.params.activityId, ...req.body };
      },
    );

    app.post<{ Params: { activityId: string }; Body: { fundingId: string; amount: number; currency: string } }>(
      '/v1/admin/activities/:activityId/fundings',
      {
        schema: {
          params: activityParams,
          body: {
            type: 'object', additionalProperties: false, required: ['fundingId', 'amount', 'currency'],
            properties: {
              fundingId: { type: 'string', minLength: 1, maxLength: 128, pattern: idPattern },
              amount,
              currency: { type: 'string', pattern: '^[A-Z]{3}$' },
            },
          },
          response: { '4xx': errorResponse },
        },
      },
      async (req, reply) => {
        const { activityId } = req.params;
        const terms = await activities.get(activityId);
        if (!terms) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no activity "${activityId}".`);
        if (terms.currency !== req.body.currency) throw new ApiError(422, 'CURRENCY_MISMATCH', `Activity ${activityId} is funded in ${terms.currency}.`);
        // Every funding is also a debit of company:cost, read back as a JS number like every
        // account: the ledger's funding in all may not pass MAX_AMOUNT (large fundings made
        // budgets and the invariants check unreadable, a 500 on every later read). Checked before
        // the journal, so two racing fundings could still pass it together.
        // A retry of a recorded funding adds nothing, so it gets its first answer whatever the total is now.
        if (!(await budget.fundingKnown(activityId, req.body.fundingId)) && !(await budget.fundingFits(req.body.amount, MAX_AMOUNT))) {
          throw new ApiError(422, 'FUNDING_TOO_LARGE', `A funding of ${req.body.amount} fen would take the ledger's funding, all activities together, past the ${MAX_AMOUNT} fen an account can hold.`);
        }
        const eventId = fundingEventIdFor(activityId, req.body.fundingId);
        const r = await journaled(() => journal.accept<{ amount: number }>({
          key: `funding:${eventId}`,
          events: [{ type: 'BudgetFunded', data: {
            eventId, occurredAt: Date.now(), activityId, traceId: randomUUID(), fundingId: req.body.fundingId, amount: req.body.amount, currency: terms.currency, fundedBy: 'admin',
          } }],
          answer: { amount: req.body.amount },
          fund: { activityId, fundingId: req.body.fundingId, amount: req.body.amount },
        }), 'The funding could not be recorded right now; retry with the same fundingId.');
        if (r.outcome === 'existing' && r.answer.amount !== req.body.amount) {
          throw new ApiError(409, 'FUNDING_CONFLICT', `Funding ${req.body.fundingId} was already used with a different amount; a funding id identifies one funding.`);
        }
        const added = r.outcome === 'accepted';
        const snap = await budget.snapshot(activityId);
        return reply.status(added ? 201 : 200).send({ activityId, fundingId: req.body.fundingId, added, funded: snap.funded, reserved: snap.reserved });
      },
    );
  
    app.put<{ Params: { activityId: string; sceneId: string }; Body: { statementText: string } }>(
      '/v1/admin/activities/:activityId/scenes/:sceneId',
      {
        schema: {
          params: {
            type: 'object', required: ['activityId', 'sceneId'],
            properties: { activityId: activityParams.properties.activityId, sceneId: activityParams.properties.activityId },
          },
          body: {
            type: 'object', additionalProperties: false, required: ['statementText'],
            properties: { statementText: { type: 'string', minLength: 1, maxLength: 200 } },
          },
          response: { '4xx': errorResponse },
        },
      },
      async (req) => {
        const { activityId, sceneId } = req.params;
        if (!(await activities.putScene(activityId, sceneId, req.body.statementText))) {
          throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no activity "${activityId}".`);
        }
        return { activityId, sceneId, statementText: req.body.statementText };
      },
    );

    app.get('/v1/admin/wallet-settings', async () => settings.get());

    app.put<{ Body: { withdrawalRolloutBp?: number; maxSingleWithdrawal?: number } }>(
      '/v1/admin/wallet-settings',
      {
        schema: {
          body: {
            type: 'object', additionalProperties: false, minProperties: 1,
            properties: {
              // Basis points of users who may withdraw: 0 closes withdrawal, 10000 opens it to everyone.
              withdrawalRolloutBp: { type: 'integer', minimum: 0, maximum: 10_000 },
              maxSingleWithdrawal: amount,
            },
          },
          response: { '4xx': errorResponse },
        },
      },
      async (req) => settings.put(req.body, `admin@${req.ip}`),
    );

    // The ledger's invariants, checked now against the projection.
    app.get('/v1/admin/invariants', async () => invariants());

    // The command journal's backlog: accepted commands the relay has not produced yet, and how
    // long the oldest has waited (growing while Kafka is down; it should drain within seconds after).
    app.get('/v1/admin/journal', async () => journal.depth());

    await app.register(reconciliationRoutes, { pool });
    await app.register(campaignRoutes, campaigns);
    await app.register(couponAdminRoutes, coupons);
  };
