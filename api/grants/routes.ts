import type { FastifyPluginAsync } from 'fastify';
import { upstreamAudit } from '../auth/upstream-plugin.ts';
import type { GrantCommand } from '../../domain/grants.ts';
import { grantRouteSchema } from './schemas.ts';
import type { GrantService } from './service.ts';

/** Upstream activity services grant rewards here. */
export const grantRoutes: FastifyPluginAsync<{ grants: GrantService }> = async (app, { grants }) => {
  app.post<{ Body: GrantCommand }>('/v1/grants', { schema: grantRouteSchema }, async (req, reply) => {
    const answer = await grants.grant(req.body, upstreamAudit(req));
    if (answer.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(201).send(answer.body);
  });
};
