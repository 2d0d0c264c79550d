import type { FastifyPluginAsync } from 'fastify';
import type pg from 'pg';
import { ApiError, errorResponse } from '../errors.ts';
import { uuid } from '../input.ts';
import { getReport, listReports } from '../../reconcile/report.ts';
import { metricsText, reconcileStatus } from '../../reconcile/metrics.ts';
import type { AuditKind } from '../../reconcile/audit.ts';

/**
 * Finance's view of reconciliation: the reconciler's status (how far behind it is, what the
 * latest windows found), the kept reports (hourly, continuous, command-line audits) with
 * their differences, and the same metrics the reconciler exports. Registered inside the
 * admin routes, so the admin token guards it.
 */
export const reconciliationRoutes: FastifyPluginAsync<{ pool: pg.Pool }> = async (app, { pool }) => {
  app.get('/v1/admin/reconciliation', async () => reconcileStatus(pool));

  app.get<{ Querystring: { kind?: AuditKind; limit?: number } }>('/v1/admin/reconciliation/reports', {
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { kind: { type: 'string', enum: ['audit', 'continuous', 'hourly'] }, limit: { type: 'integer', minimum: 1, maximum: 500, default: 24 } },
      },
      response: { '4xx': errorResponse },
    },
  }, async (req) => ({ reports: await listReports(pool, req.query.kind, req.query.limit ?? 24) }));

  app.get<{ Params: { runId: string } }>('/v1/admin/reconciliation/reports/:runId', {
    schema: {
      params: { type: 'object', required: ['runId'], properties: { runId: uuid } },
      response: { '4xx': errorResponse },
    },
  }, async (req) => {
    const report = await getReport(pool, req.params.runId);
    if (!report) throw new ApiError(404, 'UNKNOWN_REPORT', `There is no reconciliation report ${req.params.runId}.`);
    return report;
  });

  app.get('/v1/admin/reconciliation/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4');
    return metricsText(await reconcileStatus(pool));
  });
};
